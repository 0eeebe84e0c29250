"""A realistic, seeded stream of audit messages: for benchmarks, load tests and ``python -m
devtools.traffic``.

Most of a cluster's audit log is routine (lease renewals, controllers reading and watching,
kubelets patching status); ``kubectl exec`` is a small share of it and malicious exec a small share
of that. The detection cost is dominated by which events reach the rules, so the mix is the
point: ``exec_share`` of the messages are exec stages, ``malicious_share_of_exec`` of the exec
requests run a reverse shell or an HTTPS download. Each exec request is logged as the API server
logs it, three stages sharing one ``auditID``, interleaved with other traffic, its URI spelled
by one of several clients (:mod:`devtools.traffic.exec_uris`).

Raw events are serialised as Go's ``encoding/json`` writes them (``&``, ``<``, ``>`` escaped as
``\\u0026``...), because that is what a fast path reading raw bytes must survive; ECS documents
are written unescaped, as Elasticsearch and shippers write them.

Each message's shape is drawn from ``shapes`` (default ``event`` and ``ecs``): ``event`` (the raw
Event), ``ecs``, ``wrapped`` (a shipper's record), and the managed clusters' envelopes, opt-in:
``aks`` (one Azure Monitor diagnostic record), ``eventhubs`` (a ``records`` batch of one),
``cloudwatch`` (an EKS CloudWatch Logs ``DATA_MESSAGE`` of one log event, gzip-compressed as
Kinesis delivers it) and ``gke`` (a Cloud Audit Logs entry; see
:mod:`devtools.traffic.synthetic`). GKE logs one entry per request, at ``ResponseComplete``:
an exec stage drawn as ``gke`` is sent as the entry of its request's ``ResponseComplete``
stage, so a request drawn ``gke`` at several stages reaches Kafka several times with the same
``insertId`` (as Pub/Sub's at-least-once delivery does); the :class:`TrafficRecord` keeps the
slot's own stage. A ``cloudwatch`` message is binary: Kafka only, not a JSON-lines file.

Everything is a function of the seed: same seed, same arguments, same bytes.

    python -m devtools.traffic.stream --count 100000 --out events.jsonl
    python -m devtools.traffic.stream --count 100000 --rate 5000 --bootstrap 127.0.0.1:9092 --topic
    audit
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

from devtools.traffic.commands import BENIGN, MALICIOUS, ExecCommand
from devtools.traffic.exec_uris import Client
from devtools.traffic.routine import NAMESPACES
from devtools.traffic.synthetic import (
    as_aks_record,
    as_cloudwatch,
    as_ecs,
    as_event_hubs,
    as_gke_entry,
    as_wrapped,
    exec_audit_events,
    go_json,
    routine_audit_event,
)

__all__ = [
    "CLIENTS",
    "SHAPES",
    "TokenBucket",
    "TrafficRecord",
    "generate",
    "go_json",
    "main",
    "produce",
    "records",
    "write_file",
]

Shape = Literal["event", "ecs", "wrapped", "aks", "eventhubs", "cloudwatch", "gke"]
Kind = Literal["routine", "exec", "malicious"]
CLIENTS: Final[tuple[Client, ...]] = ("kubectl", "javascript", "rancher", "python", "raw")
SHAPES: Final[tuple[Shape, ...]] = (
    "event", "ecs", "wrapped", "aks", "eventhubs", "cloudwatch", "gke",
)  # fmt: skip
DEFAULT_SHAPES: Final[tuple[Shape, ...]] = ("event", "ecs")
"""What benchmarks measure; the envelopes are opt-in, so a default stream's bytes never move."""
START: Final = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
MAX_IN_FLIGHT: Final = 4  # exec requests whose later stages are still to come
_SEPARATORS: Final = (",", ":")


@dataclass(frozen=True, slots=True)
class TrafficRecord:
    """One message and what it is, so a benchmark can correlate alerts without parsing it."""

    value: bytes
    audit_id: str
    kind: Kind
    stage: str

    @property
    def key(self) -> bytes:
        """Kafka key: the auditID, so the stages of one request share a partition, in order."""
        return self.audit_id.encode()


@dataclass(slots=True)
class _Mix:
    """The generator's state: the clock and the exec requests whose stages are still due."""

    rng: random.Random
    exec_share: float
    malicious_share: float
    shapes: Sequence[Shape]
    clients: Sequence[Client]
    now: datetime = START
    in_flight: list[list[TrafficRecord]] = field(default_factory=list)

    def pending(self) -> int:
        return sum(len(stages) for stages in self.in_flight)


def generate(
    rng: random.Random,
    count: int,
    *,
    exec_share: float = 0.02,
    malicious_share_of_exec: float = 0.1,
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    clients: Sequence[Client] = CLIENTS,
) -> Iterator[bytes]:
    """``count`` JSON messages (one audit event each), deterministic from ``rng``'s seed."""
    for record in records(
        rng,
        count,
        exec_share=exec_share,
        malicious_share_of_exec=malicious_share_of_exec,
        shapes=shapes,
        clients=clients,
    ):
        yield record.value


def records(
    rng: random.Random,
    count: int,
    *,
    exec_share: float = 0.02,
    malicious_share_of_exec: float = 0.1,
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    clients: Sequence[Client] = CLIENTS,
) -> Iterator[TrafficRecord]:
    """Like :func:`generate`, with each message's auditID and kind alongside.

    Every exec request started is finished (all three stages) within ``count`` messages: near
    the end, slots that cannot hold a whole request are routine events instead.
    """
    _check_mix(exec_share, malicious_share_of_exec, shapes, clients)
    mix = _Mix(rng, exec_share, malicious_share_of_exec, shapes, clients)
    for index in range(count):
        mix.now += timedelta(microseconds=rng.randint(50, 2_000))
        left = count - index
        yield _next_record(mix, left)


def _check_mix(
    exec_share: float, malicious: float, shapes: Sequence[Shape], clients: Sequence[Client]
) -> None:
    if not 0.0 <= exec_share <= 1.0 or not 0.0 <= malicious <= 1.0:
        raise ValueError("exec_share and malicious_share_of_exec are fractions in [0, 1]")
    if not shapes or any(s not in SHAPES for s in shapes):
        raise ValueError(f"shapes must be a non-empty selection of {', '.join(SHAPES)}")
    if not clients or any(c not in CLIENTS for c in clients):
        raise ValueError(f"clients must be a non-empty selection of {', '.join(CLIENTS)}")


def _next_record(mix: _Mix, left: int) -> TrafficRecord:
    pending = mix.pending()
    if left <= pending:  # the tail belongs to the stages already promised
        return _continue_exec(mix)
    if mix.rng.random() >= mix.exec_share:
        return _routine(mix)
    resume = mix.in_flight and (
        len(mix.in_flight) >= MAX_IN_FLIGHT or mix.rng.random() < 0.6 or left < pending + 3
    )
    if resume:
        return _continue_exec(mix)
    if left < pending + 3:
        return _routine(mix)
    stages = _exec_request(mix)
    first = stages.pop(0)
    mix.in_flight.append(stages)
    return first


def _continue_exec(mix: _Mix) -> TrafficRecord:
    index = mix.rng.randrange(len(mix.in_flight))
    stages = mix.in_flight[index]
    record = stages.pop(0)
    if not stages:
        mix.in_flight.pop(index)
    return record


def _routine(mix: _Mix) -> TrafficRecord:
    event = routine_audit_event(mix.rng, mix.now)
    return TrafficRecord(_encode(mix, event), str(event["auditID"]), "routine", event["stage"])


def _exec_request(mix: _Mix) -> list[TrafficRecord]:
    rng = mix.rng
    malicious = rng.random() < mix.malicious_share
    command = rng.choice(MALICIOUS if malicious else BENIGN)
    client = rng.choice(mix.clients)
    namespace = rng.choice(NAMESPACES[:4])
    pod = f"{rng.choice(('web', 'api', 'worker'))}-6f7d8b9c5d-{rng.randrange(16**5):05x}"
    container = pod.split("-", 1)[0]
    events = exec_audit_events(
        command=command.argv,
        client=client,
        namespace=namespace,
        pod=pod,
        container=container,
        audit_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        rng=rng,
        start=mix.now,
        stdin=command.interactive,
        tty=command.interactive,
        raw_query=_raw_query(command, container) if client == "raw" else None,
        transport="spdy" if client == "kubectl" and rng.random() < 0.2 else None,
    )
    kind: Kind = "malicious" if malicious else "exec"
    complete = events[-1]  # the request as GKE logs it, once
    return [
        TrafficRecord(_encode(mix, e, complete), str(e["auditID"]), kind, str(e["stage"]))
        for e in events
    ]


def _raw_query(command: ExecCommand, container: str) -> str:
    """A hand-built query (curl against the API): every byte but letters and digits escaped."""
    pairs = [f"command={quote(arg, safe='')}" for arg in command.argv]
    pairs += [f"container={container}", "stdout=1", "stderr=1"]
    if command.interactive:
        pairs += ["stdin=1", "tty=1"]
    return "&".join(pairs)


def _encode(mix: _Mix, event: dict[str, Any], complete: dict[str, Any] | None = None) -> bytes:
    """One message of ``event`` in a shape drawn from ``mix.shapes``; ``complete`` is the
    ``ResponseComplete`` stage of its request (routine events are that stage themselves).

    Only the draw uses ``mix.rng`` (and ``wrapped`` one more draw): the envelope builders are
    functions of the event, so adding shapes moved no byte of the default stream.
    """
    shape = mix.rng.choice(mix.shapes)
    if shape == "ecs":
        return _compact(as_ecs(event))
    if shape == "wrapped":
        return _compact(as_wrapped(event, mix.rng.choice(("log", "message"))))
    if shape == "aks":
        return _compact(as_aks_record(event))
    if shape == "eventhubs":
        return _compact(as_event_hubs([as_aks_record(event)]))
    if shape == "cloudwatch":
        return as_cloudwatch([event])
    if shape == "gke":
        whole = event if event.get("stage") == "ResponseComplete" else complete
        if whole is None:
            raise ValueError(f"no ResponseComplete stage for the GKE entry of {event['auditID']}")
        return _compact(as_gke_entry(whole))
    return go_json(event)


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=_SEPARATORS, ensure_ascii=False).encode()


# --------------------------------------------------------------------------- sinks


def write_file(path: Path | str, messages: Iterable[bytes]) -> int:
    """Write one message per line (JSON-lines, the format ``auditstream scan`` reads).

    Raises :class:`ValueError` for a message holding a newline (a gzip-compressed
    ``cloudwatch`` message may): it would not be one line.
    """
    written = 0
    with Path(path).open("wb") as out:
        for value in messages:
            if b"\n" in value:
                raise ValueError(f"message {written} holds a newline: not a JSON-lines message")
            out.write(value)
            out.write(b"\n")
            written += 1
    return written


class TokenBucket:
    """Paces a loop at ``rate`` per second, allowing bursts of ``burst`` after a pause.

    The bucket refills continuously; ``take`` sleeps only when it is empty, so the long-run rate
    is exact even though ``time.sleep`` is coarse (tens of microseconds or worse).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 100)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0
        self._last = clock()

    def take(self, tokens: float = 1.0) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < tokens:
            self._sleep((tokens - self._tokens) / self.rate)
            now = self._clock()
            self._tokens += (now - self._last) * self.rate
            self._last = now
        self._tokens -= tokens


Message = bytes | tuple[bytes | None, bytes]
"""A value, or ``(key, value)``."""


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Message],
    *,
    rate: float | None = None,
    config: dict[str, object] | None = None,
    on_sent: Callable[[bytes | None, float], None] | None = None,
    flush_timeout: float = 60.0,
) -> int:
    """Produce every message to ``topic``; with ``rate``, at that many messages per second.

    ``on_sent(key, wall_time)`` runs as each message is handed to the producer (the moment the
    record's CreateTime is taken), which is what a latency measurement counts from. Raises
    :class:`RuntimeError` when a delivery failed or the flush did not finish in time.
    """
    from confluent_kafka import KafkaError, Producer  # noqa: PLC0415 - only this sink needs it

    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer(_producer_config(bootstrap, rate, config))
    bucket = TokenBucket(rate) if rate else None
    sent = 0
    for message in messages:
        key, value = message if isinstance(message, tuple) else (None, message)
        if bucket is not None:
            bucket.take()
        _produce_one(producer, topic, key, value, delivered)
        if on_sent is not None:
            on_sent(key, time.time())
        sent += 1
    left = producer.flush(flush_timeout)
    if failures or left:
        raise RuntimeError(f"produce to {topic}: {len(failures)} failed, {left} unflushed")
    return sent


def _producer_config(
    bootstrap: str, rate: float | None, extra: dict[str, object] | None
) -> dict[str, object]:
    """Bulk loading batches hard; a paced stream lingers briefly (latency counts from produce)."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2 if rate else 20,
        "batch.num.messages": 10_000,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 200_000,
        "compression.type": "lz4",
        **(extra or {}),
    }


def _produce_one(
    producer: Any,
    topic: str,
    key: bytes | None,
    value: bytes,
    delivered: Callable[[Any, object], None],
) -> None:
    """``produce`` then ``poll(0)``; on a full local queue, serve callbacks and try again."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=delivered)
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
        return


# --------------------------------------------------------------------------- command line


def _parser(prog: str = "python -m devtools.traffic") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate realistic audit traffic to a JSON-lines file or a Kafka topic.",
    )
    parser.add_argument("--count", type=int, required=True, help="messages to generate")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--exec-only", action="store_true", help="every message a pod exec stage")
    parser.add_argument("--exec-share", type=float, default=0.02, help="default 0.02")
    parser.add_argument("--malicious-share", type=float, default=0.1, help="of exec requests")
    parser.add_argument("--rate", type=float, default=None, help="messages per second (Kafka)")
    parser.add_argument(
        "--shapes",
        type=_shapes,
        default=DEFAULT_SHAPES,
        help=f"comma-separated message shapes drawn from: {', '.join(SHAPES)} "
        f"(default {','.join(DEFAULT_SHAPES)}; cloudwatch is gzip, Kafka only)",
    )
    sink = parser.add_mutually_exclusive_group(required=True)
    sink.add_argument("--out", type=Path, help="write JSON lines here")
    sink.add_argument("--bootstrap", help="Kafka bootstrap servers (needs --topic)")
    parser.add_argument("--topic", help="Kafka topic")
    return parser


def _shapes(text: str) -> tuple[Shape, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SHAPES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SHAPES)}")
    return chosen  # type: ignore[return-value]  # checked against SHAPES


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.bootstrap and not args.topic:
        _parser().error("--bootstrap needs --topic")
    if args.out is not None and "cloudwatch" in args.shapes:
        _parser().error("--shapes cloudwatch is gzip-compressed binary: use --bootstrap")
    stream = records(
        random.Random(args.seed),
        args.count,
        exec_share=1.0 if args.exec_only else args.exec_share,
        malicious_share_of_exec=args.malicious_share,
        shapes=args.shapes,
    )
    started = time.monotonic()
    if args.out is not None:
        written = write_file(args.out, (r.value for r in stream))
    else:
        written = produce(args.bootstrap, args.topic, ((r.key, r.value) for r in stream),
                          rate=args.rate)  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"{written} messages in {elapsed:.1f} s ({written / elapsed:,.0f}/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
