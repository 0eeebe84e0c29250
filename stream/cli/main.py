"""The ``auditstream`` command line: argument parsing and exit codes, nothing else.

Exit codes: 0 the work was done; 2 usage error; 3 a rule named on the command line could not be
loaded (the others still ran) or no rule could be loaded at all; 4 (``run`` only) a fatal runtime
failure, see :mod:`auditstream.stream.service`. ``topics`` has its own (1: a topic differs), see
:mod:`auditstream.stream.cli.topics`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.languages import LoadedRule
from auditstream.detections.ruleset.loader import RuleProblem, RuleSet, load_rules
from auditstream.detections.stateful.engine import StatefulEngine
from auditstream.detections.stateful.in_process import InProcessState
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.stream.cli.rules import run_rules_command
from auditstream.stream.cli.run import run_command
from auditstream.stream.cli.scan import scan
from auditstream.stream.cli.state import add_state_parser, state_command
from auditstream.stream.cli.topics import add_topics_parser, topics_command
from auditstream.stream.sinks.json_lines import JsonLinesAlertSink

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_RULES = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auditstream",
        description="Real-time detection of kubectl exec abuse in Kubernetes audit logs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan_cmd = commands.add_parser(
        "scan", help="run the rules over JSON-lines audit logs (files, .gz, or - for stdin)"
    )
    _add_rule_options(scan_cmd)
    scan_cmd.add_argument("inputs", nargs="*", default=["-"], metavar="PATH", help="default: -")
    scan_cmd.add_argument(
        "--dead-letter", type=Path, metavar="FILE", help="write malformed lines here as JSON lines"
    )
    scan_cmd.add_argument(
        "--window", type=_at_least_1, default=100_000, metavar="N",
        help="remember this many alert ids to alert once per (rule, auditID) (default 100000)",
    )  # fmt: skip
    scan_cmd.add_argument(
        "--history", action="append", default=[], metavar="PATH",
        help="audit logs read first, for stateful rules' history only (no alerts from them): "
        "new-terms rules then know what is not new; repeatable",
    )  # fmt: skip
    scan_cmd.add_argument(
        "--allowed-lateness", type=float, default=600.0, metavar="SECONDS",
        help="how far behind the newest event time an event may come and still count in "
        "stateful rules' windows (default 600)",
    )  # fmt: skip

    run_cmd = commands.add_parser(
        "run", help="run the streaming service: Kafka in, alerts and dead letters out",
        description="Settings come from --config (TOML), AUDITSTREAM_* variables and these flags; "
        "flags win over the environment, which wins over the file. See README.md.",
    )  # fmt: skip
    _add_run_options(run_cmd)
    add_topics_parser(commands)  # topics create | check
    add_state_parser(commands)  # state warm

    rules_cmd = commands.add_parser("rules", help="list, show or test the loaded rules")
    rules_sub = rules_cmd.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    for action, text in (
        ("list", "list loaded rules with ids and severities, and rules that failed to load"),
        ("show", "show a rule's metadata and compiled stages"),
        ("test", "run every rule's example cases"),
    ):
        sub = rules_sub.add_parser(action, help=text)
        _add_rule_options(sub)
        if action == "test":
            sub.add_argument(
                "--cases", action="append", type=Path, default=[], metavar="FILE",
                help="also run the cases of this file, each naming its rule by id (repeatable)",
            )  # fmt: skip
        if action == "show":
            sub.add_argument("rule", help="rule id or name (a unique substring is enough)")
    return parser


def _at_least_1(text: str) -> int:
    """An integer of 1 or more: argparse turns the error into a usage error (exit 2) instead of
    the alert window's ValueError escaping as a traceback."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules", action="append", type=Path, default=[], metavar="PATH",
        help="also load rules from this file or folder: TOML, Sigma .yml/.yaml (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--no-builtin-rules", action="store_true", help="do not load the rules shipped with us"
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Every run flag defaults to *absent* (SUPPRESS): only given flags override the layers."""
    hide = argparse.SUPPRESS
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help="TOML settings")
    for flag, metavar, text in (
        ("--bootstrap-servers", "HOSTS", "Kafka bootstrap servers (host:port,...)"),
        ("--input-pattern", "REGEX", "subscribe to topics matching ^REGEX (instead of topics)"),
        ("--group-id", "ID", "consumer group (default auditstream)"),
        ("--group-protocol", "P", "classic (cooperative-sticky, default) or consumer (KIP-848)"),
        ("--delivery", "MODE", "at-least-once (default) or exactly-once (Kafka transactions)"),
        ("--transactional-id", "ID", "exactly-once: this replica's id (default: see README)"),
        ("--alert-topic", "TOPIC", "where alerts go"),
        ("--dead-letter-topic", "TOPIC", "where input that is not audit data goes"),
        ("--alert-format", "FMT", "json (default), avro (Schema Registry), ecs or ocsf"),
        ("--registry-url", "URL", "Schema Registry URL (credentials: use the environment)"),
        ("--http-host", "HOST", "address of /metrics, /healthz, /readyz (default 127.0.0.1)"),
        ("--log-format", "FMT", "auto (console on a TTY, else JSON lines), json or console"),
        ("--log-level", "LEVEL", "debug, info (default), warning or error"),
    ):
        parser.add_argument(flag, default=hide, metavar=metavar, help=text)
    for flag, kind, metavar, text in (
        ("--http-port", int, "PORT", "port of the HTTP endpoint (default 9108, 0 picks one)"),
        ("--window", int, "N", "alert ids remembered to suppress repeats (default 100000)"),
        ("--window-restore", float, "S", "seconds of alert ids read back on start (default 600)"),
        ("--commit-interval", float, "S", "seconds between offset commits (default 5)"),
        ("--shutdown-timeout", float, "S", "seconds to flush and commit on stop (default 8)"),
    ):
        parser.add_argument(flag, type=kind, default=hide, metavar=metavar, help=text)
    parser.add_argument(
        "--input-topic", dest="input_topics", action="append", default=hide, metavar="TOPIC",
        help="a topic to consume (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--rules", action="append", default=hide, metavar="PATH",
        help="also load rules from this file or folder: TOML, Sigma .yml/.yaml (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--no-builtin-rules", dest="builtin_rules", action="store_false", default=hide,
        help="do not load the rules shipped with us",
    )  # fmt: skip
    _add_property_options(parser)


def _add_property_options(parser: argparse.ArgumentParser) -> None:
    """librdkafka / registry client properties, passed through (see auditstream.stream.settings)."""
    hide = argparse.SUPPRESS
    for table, text in (
        ("kafka", "a librdkafka property for every client (repeatable), e.g. -X linger.ms=5"),
        ("consumer", "a librdkafka property for the consumer only (repeatable)"),
        ("producer", "a librdkafka property for the producer only (repeatable)"),
        ("registry", "a SchemaRegistryClient property (repeatable)"),
    ):
        flags = ("-X", "--kafka") if table == "kafka" else (f"--{table}",)
        parser.add_argument(
            *flags, dest=table, action="append", default=hide, metavar="KEY=VALUE", help=text
        )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    if args.command == "run":
        return run_command(args)
    if args.command == "topics":
        return topics_command(args)
    if args.command == "state":
        return state_command(args)
    rules = load_rules(args.rules, builtin=not args.no_builtin_rules)
    _report_problems(rules.problems, sys.stderr)
    if args.command == "rules":
        status = run_rules_command(
            args.rules_command,
            rules,
            getattr(args, "rule", None),
            case_files=getattr(args, "cases", []),
        )
        return max(status, _rules_status(rules, args.rules))
    if not rules.rules:
        print("auditstream: no rule could be loaded", file=sys.stderr)
        return EXIT_RULES
    state = in_process_state(rules.rules, allowed_lateness=args.allowed_lateness)
    pipeline = DetectionPipeline(Detector(rules.rules), RecentAlerts(args.window), state=state)
    dead_letter = args.dead_letter.open("w", encoding="utf-8") if args.dead_letter else None
    try:
        progress = sys.stderr if sys.stderr.isatty() else None
        if args.history and state is not None:
            state.warming = True
            with Path(os.devnull).open("w", encoding="utf-8") as discard:
                scan(args.history, pipeline, JsonLinesAlertSink(discard), progress=progress)
            state.warming = False
        alerts = JsonLinesAlertSink(sys.stdout)
        summary = scan(args.inputs, pipeline, alerts, dead_letter=dead_letter, progress=progress)
    except FileNotFoundError as err:
        print(f"auditstream: {err.filename}: no such file", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if dead_letter is not None:
            dead_letter.close()
    sys.stdout.flush()
    print(summary.render(), file=sys.stderr)
    return _rules_status(rules, args.rules)


def in_process_state(
    rules: Sequence[LoadedRule], *, allowed_lateness: float
) -> InProcessState | None:
    """The stateful rules' state for an offline run, or ``None`` when none is loaded."""
    stateful = [rule for rule in rules if isinstance(rule, StatefulRule)]
    if not stateful:
        return None
    lateness_ms = int(allowed_lateness * 1000)
    return InProcessState(StatefulEngine(stateful, allowed_lateness_ms=lateness_ms))


def _report_problems(problems: Sequence[RuleProblem], stream: IO[str]) -> None:
    for problem in problems:
        what = "file skipped" if problem.skipped else "rule not loaded"
        print(f"auditstream: {what}: {problem}", file=stream)


def _rules_status(rules: RuleSet, named: Sequence[Path]) -> int:
    """Problems in a file named on the command line fail the run; those found in folders warn."""
    files = {str(path) for path in named if path.is_file()}
    if any(problem.path in files for problem in rules.problems):
        return EXIT_RULES
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
