"""Restoring a stateful-rule store from its changelog: ``python -m benchmarks.state_restore``.

One broker (the project's harness), one changelog partition holding ``--keys`` new-terms states
(the size a 7-day history of one user-agent/IP/user combination per key takes: about 130 bytes
of JSON), produced once; then the service's own restore path (``ChangelogReader.restore`` into a
``RocksStore``), timed from an empty store (a replica with no local copy) and from a clean
close's checkpoint (nothing to replay). Prints records/s and the CPU seconds it took. Run it on a
quiet machine: the broker and the reader share the cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from auditstream.detections.stateful.candidate import store_key
from auditstream.stream.state.restore import ChangelogReader
from auditstream.stream.state.stores import RocksStore

TOPIC = "bench-stateful-changelog"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.state_restore")
    parser.add_argument("--keys", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    from devtools.jvm.kafka import KafkaCluster  # noqa: PLC0415 - dev-only harness

    with KafkaCluster(nodes=1) as cluster, tempfile.TemporaryDirectory() as folder:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topic = NewTopic(TOPIC, 1, 1, config={"cleanup.policy": "compact"})
        admin.create_topics([topic])[TOPIC].result(timeout=60)
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 50,
                             "compression.type": "lz4"})  # fmt: skip
        started = time.monotonic()
        for n in range(args.keys):
            key = store_key("2f8b3a1c-7d4e-4c2b-9a61-0e5d8c7b6a41", (f"agent-{n}", "10.1.2.3"))
            value = orjson.dumps(
                {"first": [f"5b0c2d1e-0000-4000-8000-{n:012d}/ResponseComplete",
                           1767225600000 + n], "last": 1767225600000 + n}
            )  # fmt: skip
            while True:
                try:
                    producer.produce(TOPIC, key=key, value=value, partition=0)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(120)
        produced = time.monotonic() - started
        reader = ChangelogReader({"bootstrap.servers": cluster.bootstrap}, TOPIC, timeout=30)
        results = {"keys": args.keys, "produce_seconds": round(produced, 2)}
        for label, start in (("from_empty_store", None), ("from_checkpoint", "end")):
            store = RocksStore(Path(folder) / label)
            begin = reader.end(0) if start == "end" else None
            cpu = _cpu()
            restored = reader.restore(0, store, begin)
            used = _cpu() - cpu
            store.close()
            results[label] = {
                "records": restored.records,
                "seconds": round(restored.seconds, 3),
                "records_per_second": round(restored.records / restored.seconds)
                if restored.seconds
                else None,
                "cpu_seconds": round(used, 2),
            }
        reader.close()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
