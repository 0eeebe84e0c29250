"""(d-offline) The plain script ``auditstream scan`` is held against: ``json.loads`` and the two
seed rules' patterns per line of a file, an alert line per hit on stdout.

The same detection as the naive Kafka port (c), without Kafka: what a file of audit events costs
a Python loop that does nothing else. No dead letters, no ECS mapping, no normalisation.

    python -m benchmarks.contenders.plain_script FILE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.contenders.naive import detect


def main(argv: list[str] | None = None) -> int:
    (path,) = sys.argv[1:] if argv is None else argv
    write = sys.stdout.write
    with Path(path).open("rb") as lines:
        for line in lines:
            for rule, audit in detect(line):
                write(json.dumps({"rule": rule, "audit_id": audit.get("auditID")}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
