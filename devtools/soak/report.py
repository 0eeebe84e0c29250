"""A soak run's figures, for the terminal and as a markdown section of ``docs/reliability.md``.

Each figure comes with what it means, so that a reader of the report needs no other page to tell
a duplicate (allowed in at-least-once mode) from a loss (never allowed).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Final

from devtools.soak.result import SoakResult

__all__ = ["MARK_END", "MARK_START", "figures", "markdown", "text", "write_report"]

MARK_START: Final = "<!-- soak-results:start -->"
MARK_END: Final = "<!-- soak-results:end -->"

Figure = tuple[str, str, str]


def figures(result: SoakResult) -> list[Figure]:
    """(name, value, meaning) of every figure of the run."""
    check, config = result.check, result.config
    faults = ", ".join(f"{kind}: {n}" for kind, n in result.faults_by_kind.items()) or "none"
    exits = Counter(e.code for e in result.unplanned_exits)
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(check.dead_letter_reasons.items()))
    behind = len(check.partitions_behind)
    drained = "no" if result.drain_seconds is None else f"{result.drain_seconds:.1f} s"
    rows = [
        ("duration", f"{config.duration:.0f} s of input and faults; {result.wall_seconds:.0f} s "
         "in all", "faults are injected while input flows; the total adds start-up, drain and "
         "checks"),
        ("input records", f"{result.records:,} ({result.events:,} audit events, "
         f"{result.poison} poison) in {result.produce_seconds:.0f} s"
         + (f"; {result.resent} sent again after a failed delivery" if result.resent else ""),
         f"streamed at about {result.records / max(result.produce_seconds, 1) * 60:,.0f} a "
         "minute, keyed by auditID"),
        ("exec requests", f"{result.exec_requests:,} ({result.malicious_requests:,} malicious), "
         f"{result.exec_stages:,} stage records", "each exec is logged in up to three stages "
         "that share one auditID, among routine events"),
        ("faults injected", f"{len(result.faults)} ({faults})", "each one while input flowed; "
         "see the fault list for times, targets and outcomes"),
        ("unplanned replica exits", _exits(exits), "replicas that exited without being told "
         "to, restarted by the soak as an orchestrator would"),
        ("alerts expected", f"{check.expected_alerts:,}", "distinct alert ids `auditstream scan` "
         "gives for the same input"),
        ("alerts seen", f"{check.alerts_seen:,} ids in {check.alert_records:,} records",
         "distinct alert ids on the alert topic, read with `read_committed`"),
        ("lost", f"{len(check.lost)}", "expected alert ids missing from the topic: must be 0"),
        ("duplicates", f"{check.duplicates:,} records over {check.duplicated_ids:,} ids",
         "records beyond the first per alert id: allowed in at-least-once (downstream "
         "deduplicates on the key), must be 0 in exactly-once"),
        ("unexpected alerts", f"{len(check.unexpected)}", "alert ids the scan does not give: "
         "must be 0"),
        ("poison dead-lettered", f"{check.poison_dead_lettered} of {check.poison_expected}",
         "poison records found on the dead-letter topic by key (or value): must be all"),
        ("dead letters", f"{check.dead_letters} ({reasons or 'none'}; "
         f"{check.truncated_dead_letters} cut to fit)", "records on the dead-letter topic, by "
         "`auditstream.dlq.reason`; more than the poison count means repeats after replays"),
        ("audit data dead-lettered", f"{len(check.unexpected_dead_letters)}", "dead letters "
         "that are not poison: must be 0"),
        ("offsets at the end", f"{config.partitions - behind} of {config.partitions} "
         "partitions", "input partitions whose committed offset is the end offset: must be all"),
        ("drain", drained, "from the last input record to the group committed to the end"),
        ("final stop", ", ".join(f"{n}: {c}" for n, c in sorted(result.stop_codes.items()))
         or "no replica running (all waiting to restart)",
         "each replica's exit code after the final SIGTERM (0: clean)"),
    ]  # fmt: skip
    if config.alert_format == "avro":
        rows.append(("Avro alerts undecodable", f"{len(check.undecodable)}", "alerts whose "
                     "schema id the registry no longer resolves, or that do not decode with it: "
                     "must be 0"))  # fmt: skip
    return rows


def _exits(codes: Counter[int]) -> str:
    if not codes:
        return "0"
    by_code = ", ".join(f"exit {code}: {n}" for code, n in sorted(codes.items()))
    return f"{codes.total()} ({by_code})"


def verdict(result: SoakResult) -> str:
    return "PASS" if result.ok else "FAIL"


def command(result: SoakResult) -> str:
    config = result.config
    parts = [f"python -m devtools.soak --duration {config.duration:g} --seed {config.seed}"]
    if config.delivery != "at-least-once":
        parts.append(f"--delivery {config.delivery}")
    if config.alert_format != "json":
        parts.append(f"--alert-format {config.alert_format}")
    if config.rate != 100:
        parts.append(f"--rate {config.rate:g}")
    return " ".join(parts)


def text(result: SoakResult) -> str:
    """The figures for the terminal, then the violations and anomalies."""
    config = result.config
    lines = [
        f"soak {verdict(result)}: seed {config.seed}, {config.delivery}, "
        f"{config.alert_format} alerts, {result.started:%Y-%m-%d %H:%M} UTC",
    ]
    width = max(len(name) for name, _, _ in figures(result))
    lines += [f"  {name:<{width}}  {value}" for name, value, _ in figures(result)]
    lines += [f"  VIOLATION: {v}" for v in result.violations]
    lines += [f"    {note}" for note in result.context]
    lines += [f"  anomaly: {a}" for a in result.anomalies]
    lines += [f"  unplanned exit: {e.replica} at {e.at:.0f} s, code {e.code}: {e.error}"
              for e in result.unplanned_exits]  # fmt: skip
    if result.workdir is not None:
        lines.append(f"  logs: {result.workdir}")
    return "\n".join(lines)


def markdown(result: SoakResult) -> str:
    """One run as a markdown section: when, where, the figures, the faults, the findings."""
    config, machine = result.config, result.machine
    out = [
        f"### {result.started:%Y-%m-%d %H:%M} UTC: {config.duration:g} s, seed {config.seed}, "
        f"{config.delivery}, {config.alert_format.upper()} alerts: {verdict(result)}",
        "",
        f"- command: `{command(result)}`",
        f"- machine: {machine.host}, {machine.cpu}, {machine.cores} cores, "
        f"{machine.memory_gb:.0f} GB; load average at the start "
        f"{machine.load[0]:.2f} / {machine.load[1]:.2f} / {machine.load[2]:.2f} "
        "(the machine is shared)",
        f"- software: Kafka {machine.kafka} (3 KRaft nodes, broker+controller each), "
        f"librdkafka {machine.librdkafka}, Python {machine.python}; "
        f"auditstream at {machine.revision}",
        "",
        "| figure | value | what it means |",
        "| --- | --- | --- |",
    ]
    out += [f"| {name} | {value} | {meaning} |" for name, value, meaning in figures(result)]
    out += ["", "Faults, in order (seconds since the input started):", ""]
    out += ["| at | fault | target | outcome |", "| --- | --- | --- | --- |"]
    for fault in result.faults:
        outcome = f"{fault.outcome} ({fault.took:.1f} s)"
        if fault.anomaly:
            outcome += f"; **{fault.anomaly}**"
        out.append(f"| {fault.at:.0f} s | {fault.kind} | {fault.target} | {outcome} |")
    out += ["", _findings(result), ""]
    return "\n".join(out)


def _findings(result: SoakResult) -> str:
    notes = [f"- **violation**: {v}" for v in result.violations]
    notes += [f"  - {note}" for note in result.context]
    notes += [
        f"- unplanned exit: replica {e.replica} at {e.at:.0f} s, exit {e.code}: "
        f"`{e.error.strip()[:300]}`"
        for e in result.unplanned_exits
    ]
    notes += [f"- anomaly: {a}" for a in result.anomalies]
    if not notes:
        return "Findings: none; every invariant held and every replica exited cleanly."
    return "Findings:\n\n" + "\n".join(notes)


def write_report(path: Path, result: SoakResult) -> None:
    """Add the run's section to ``path``, newest first, between the results markers (the
    document's prose stays as written); a missing file is created with just the results."""
    section = markdown(result)
    if not path.exists():
        path.write_text(f"# Reliability\n\n## Results\n\n{MARK_START}\n\n{section}\n{MARK_END}\n")
        return
    doc = path.read_text()
    if MARK_START in doc:
        doc = doc.replace(MARK_START, f"{MARK_START}\n\n{section}", 1)
    else:
        doc = f"{doc.rstrip()}\n\n{MARK_START}\n\n{section}\n{MARK_END}\n"
    path.write_text(doc)
