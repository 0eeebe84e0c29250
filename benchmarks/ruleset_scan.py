"""``auditstream scan`` with the shipped rules against the same plus a whole ruleset, side by side.

Usage: ``python -m benchmarks.ruleset_scan --rules PATH [--rules PATH]... [--more-rules PATH]...
[--count N]``, e.g. with ``--rules`` a checkout of Elastic's detection-rules
``rules/integrations/kubernetes``; ``--more-rules`` adds a third contender with those rules too
(the stateful ones, say, beside the per-event ones).
Both contenders scan the same cached default mix, alternately, ``--rounds`` times; start-up
(a scan of an empty file with the same rules) is subtracted. Prints events/s, events per
CPU-second and the ratio of the two. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks.data import OUT, ensure_dataset
from benchmarks.run import timed_scan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ruleset_scan")
    parser.add_argument("--rules", action="append", type=Path, required=True)
    parser.add_argument("--more-rules", action="append", type=Path, default=[])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    data = ensure_dataset("mix", args.count, seed=1, exec_share=0.02, malicious_share=0.1)
    empty = OUT / "empty.jsonl"
    empty.write_bytes(b"")
    contenders = {
        "shipped rules": [],
        "shipped + ruleset": [f"--rules={path}" for path in args.rules],
    }
    if args.more_rules:
        contenders["shipped + all"] = [
            f"--rules={path}" for path in [*args.rules, *args.more_rules]
        ]
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, options in contenders.items():
            start_wall, _, _, start_cpu = timed_scan(empty, OUT / "empty.out", *options)
            wall, _, alerts, cpu = timed_scan(data.values, OUT / "ruleset.out", *options)
            results[name].append((wall - start_wall, cpu - start_cpu, alerts))
    rates = {}
    print(f"{data.count} messages ({data.values.name}), {args.rounds} rounds, medians:")
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rates[name] = data.count / wall
        print(
            f"  {name:<18} {rates[name]:>9,.0f} events/s  "
            f"{data.count / cpu:>9,.0f} events/CPU-s  {runs[0][2]} alerts"
        )
    for name in list(contenders)[1:]:
        print(f"  ratio ({name} / shipped): {rates[name] / rates['shipped rules']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
