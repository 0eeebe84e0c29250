"""``python -m devtools.soak``: one soak run against a 3-node cluster it starts itself.

Exit status: 0 when every invariant held, 1 when one broke (the figures and the logs' place say
what), 2 for usage errors, 3 when the harness itself failed (a JVM that would not start, a
replica that refused its settings) before the checker could say anything.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.jvm.process import HarnessError
from devtools.soak.config import DEFAULT_RATE, SoakConfig
from devtools.soak.replicas import SoakAborted
from devtools.soak.report import text, write_report
from devtools.soak.runner import run_soak

EXIT_VIOLATION = 1
EXIT_HARNESS = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.soak",
        description="Chaos soak: replicas and brokers killed under a live audit stream with "
        "poison, then every alert and poison record accounted for.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        required=True,
        help="seconds of input and faults (the drain and checks come after)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        required=True,
        help="seeds the input, the poison's places and the fault schedule",
    )
    parser.add_argument(
        "--delivery",
        choices=("at-least-once", "exactly-once"),
        default="at-least-once",
        help="the service's delivery mode; exactly-once also requires 0 duplicates",
    )
    parser.add_argument(
        "--alert-format",
        choices=("json", "avro"),
        default="json",
        help="avro adds a Schema Registry and its restarts to the faults",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"input records per second (default {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=150.0,
        help="seconds the replicas get after the input to commit to its end (default 150)",
    )
    parser.add_argument(
        "--report", type=Path, help="add the run's figures as a markdown section to this file"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep replica logs here (default: a temporary directory, kept "
        "only when an invariant breaks)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = SoakConfig(
            duration=args.duration,
            seed=args.seed,
            delivery=args.delivery,
            alert_format=args.alert_format,
            rate=args.rate,
            drain_timeout=args.drain_timeout,
            workdir=args.workdir,
        )
    except ValueError as err:
        _parser().error(str(err))
    try:
        result = run_soak(config)
    except (HarnessError, SoakAborted) as err:
        print(f"soak aborted: {err}", file=sys.stderr)
        return EXIT_HARNESS
    print(text(result))
    if args.report is not None:
        write_report(args.report, result)
        print(f"report: section added to {args.report}")
    return 0 if result.ok else EXIT_VIOLATION


if __name__ == "__main__":
    sys.exit(main())
