"""(a) The ceiling: a bare confluent-kafka consumer loop, no processing at all.

It reads until it has seen ``--expect`` messages, commits once synchronously (the runner's
"done" signal), then idles until SIGTERM. Nothing a detection service does can be faster.
"""

from __future__ import annotations

import argparse
import signal
import sys

from confluent_kafka import Consumer

BATCH = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args(argv)
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    committed = False
    while not stopping:
        for msg in consumer.consume(num_messages=BATCH, timeout=0.2):
            if msg.error() is None:
                seen += 1
        if seen >= args.expect and not committed:
            consumer.commit(asynchronous=False)
            committed = True
    consumer.close()
    print(f"bare consumer: {seen} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
