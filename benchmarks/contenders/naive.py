"""(c) A naive port of the two Elastic rules: ``json.loads`` everything, ``re`` on every exec.

What a team writes in an afternoon: parse every message, pick ``kubernetes.audit`` or the raw
event, and for pod exec requests ``unquote_plus`` the URI, apply the rules' GROK as one regex and
their RLIKE patterns with ``re.search``; alerts produced as JSON; offsets auto-committed (every
250 ms, the interval our service is given in the benchmark too). No dead letters, no
at-least-once bookkeeping, no normalisation of the command line: fewer guarantees, less work.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from typing import Any
from urllib.parse import unquote_plus

from confluent_kafka import Consumer, Producer

GROK = re.compile(r".*?/exec\?(.*?)&(?:container|stdin|stdout|stderr)=.*", re.DOTALL)
DOWNLOAD = re.compile(r".*(curl.*https|wget.*https).*", re.DOTALL)
DOWNLOAD_NOISE = re.compile(
    r".*(/api/v1/health|/healthz|/readyz|/livez|127\.0\.0\.1|localhost|/openid/v1/jwks"
    r"|/openid-connect/certs|/.well-known/openid-configuration|/.well-known/jwks\.json"
    r"|kubernetes\.default\.svc).*",
    re.DOTALL,
)
SHELL = re.compile(
    r".*(/dev/tcp/|/dev/udp/|zsh/net/tcp|zsh/net/udp|nc\s+-e|ncat\s+-e|netcat\s+-e|nc\s.*\s-c\s"
    r"|mkfifo|socat\s.*exec|socat\s.*pty|bash\s+-i\s+>&|0>&1|>&\s*/dev/tcp"
    r"|import\s+socket.*connect|import\s+pty.*spawn|socket\.socket.*connect|IO::Socket::INET"
    r"|fsockopen|TCPSocket\.new|/inet/tcp/).*",
    re.DOTALL,
)
SHELL_NOISE = re.compile(
    r".*/dev/tcp/(localhost|127\.0\.0\.1)/(8080|8443|9090|3000|5000|8888|80|443).*", re.DOTALL
)


def audit_of(doc: dict[str, Any]) -> dict[str, Any]:
    kubernetes = doc.get("kubernetes")
    if isinstance(kubernetes, dict) and isinstance(kubernetes.get("audit"), dict):
        audit: dict[str, Any] = kubernetes["audit"]
        return audit
    return doc


def detect(value: bytes) -> list[tuple[str, dict[str, Any]]]:
    try:
        audit = audit_of(json.loads(value))
    except ValueError:
        return []
    ref = audit.get("objectRef") or {}
    uri = audit.get("requestURI") or ""
    if ref.get("subresource") != "exec" or "command=" not in uri:
        return []
    match = GROK.match(unquote_plus(uri))
    if match is None:
        return []
    command = match.group(1).replace("command=", "").replace("&", " ")
    hits = []
    if DOWNLOAD.match(command) and not DOWNLOAD_NOISE.match(command):
        hits.append(("curl_or_wget_to_https", audit))
    if SHELL.match(command) and not SHELL_NOISE.match(command):
        hits.append(("potential_reverse_shell", audit))
    return hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--bootstrap", "--topic", "--group", "--alert-topic"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "auto.commit.interval.ms": 250,
            # our service's prefetch setting (stream/kafka/config.py): compare the code, not a knob
            "fetch.queue.backoff.ms": 20,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 10})
    consumer.subscribe([args.topic])
    while not stopping:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            if msg.error() is not None:
                continue
            for rule, audit in detect(msg.value() or b""):
                alert = {"rule": rule, "audit_id": audit.get("auditID"), "event": audit}
                producer.produce(args.alert_topic, json.dumps(alert).encode())
        producer.poll(0)
    producer.flush(10)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
