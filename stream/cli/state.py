"""``auditstream state warm``: build stateful rules' history from audit logs before alerting.

A new-terms rule with an empty history would call every value new. ``state warm`` reads audit
log files (JSON lines, ``.gz``, ``-``) with the service's settings and rules and produces every
candidate they give to the repartition topic marked *warm*: the replica that owns each key
applies it as history and never alerts on it. Run it once before the first ``run`` (or at any
time: warm candidates never alert), over at least the rules' history windows of logs; until a
partition's history covers a rule's window, the service learns that rule's keys silently.

Exit codes: 0 done; 2 invalid settings, or no stateful rule loaded; 4 the broker did not take
every record within ``shutdown_timeout`` after the last line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Final

from confluent_kafka import Producer

from auditstream.detections.alert import Alert
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.stream.cli.run import flags_from_args
from auditstream.stream.cli.scan import scan
from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.config import producer_config
from auditstream.stream.settings import load_settings
from auditstream.stream.sinks.json_lines import JsonLinesAlertSink

EXIT_OK: Final = 0
EXIT_CONFIG: Final = 2
EXIT_FATAL: Final = 4


class WarmProducer:
    """The pipeline's candidate route for warming: each candidate to the repartition topic,
    keyed by its group, marked warm; no alert comes back."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.sent = 0
        self.failed = 0

    def alerts(self, candidates: Iterable[Candidate], detected_at: datetime) -> list[Alert]:
        del detected_at  # nothing alerts while warming
        for candidate in candidates:
            warm = replace(candidate, warm=True)
            while True:
                try:
                    self._producer.produce(
                        self._topic, key=warm.store_key, value=warm.to_bytes(),
                        on_delivery=self._delivered,
                    )  # fmt: skip
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self.sent += 1
        self._producer.poll(0)
        return []

    def _delivered(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1


def add_state_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    state = commands.add_parser("state", help="stateful rules' state: build history (warm)")
    actions = state.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    warm = actions.add_parser(
        "warm",
        help="produce audit logs' candidates as history (never alerts)",
        description="Settings as for run (--config, AUDITSTREAM_*, flags); see "
        "docs/stateful-rules.md.",
    )
    hide = argparse.SUPPRESS
    warm.add_argument("inputs", nargs="+", metavar="PATH", help="JSON-lines audit logs, .gz, -")
    warm.add_argument("--config", type=Path, default=None, metavar="FILE", help="TOML settings")
    for flag, metavar, text in (
        ("--bootstrap-servers", "HOSTS", "Kafka bootstrap servers (host:port,...)"),
        ("--group-id", "ID", "the service's consumer group (names its stateful topics)"),
    ):
        warm.add_argument(flag, default=hide, metavar=metavar, help=text)
    warm.add_argument(
        "--rules", action="append", default=hide, metavar="PATH",
        help="the rules the service loads (repeatable)",
    )  # fmt: skip
    warm.add_argument(
        "--no-builtin-rules", dest="builtin_rules", action="store_false", default=hide,
        help="do not load the rules shipped with us",
    )  # fmt: skip
    warm.add_argument(
        "-X", "--kafka", dest="kafka", action="append", default=hide, metavar="KEY=VALUE",
        help="a librdkafka property (repeatable); secrets: use the environment",
    )  # fmt: skip


def state_command(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in flags_from_args(args).items() if k not in ("state_command", "inputs")}
    environ = dict(os.environ)
    # warm needs no topics of its own to be named: the run settings' required ones get
    # placeholders when absent (nothing is read from or written to them).
    for name, placeholder in (("alert_topic", "unused"), ("dead_letter_topic", "unused-dlq")):
        environ.setdefault(f"AUDITSTREAM_{name.upper()}", placeholder)
    environ.setdefault("AUDITSTREAM_INPUT_TOPICS", "unused-input")
    try:
        settings = load_settings(args.config, environ, flags)
    except SettingsError as err:
        print(f"auditstream: invalid configuration: {err}", file=sys.stderr)
        return EXIT_CONFIG
    rules = load_rules(settings.rules.paths, builtin=settings.rules.builtin)
    if not any(isinstance(rule, StatefulRule) for rule in rules.rules):
        print("auditstream: no stateful rule is loaded: nothing to warm", file=sys.stderr)
        return EXIT_CONFIG
    producer = Producer(producer_config(settings.kafka))
    route = WarmProducer(producer, settings.topics.repartition)
    pipeline = DetectionPipeline(Detector(rules.rules), RecentAlerts(1), state=route)
    with Path(os.devnull).open("w", encoding="utf-8") as discard:
        summary = scan(args.inputs, pipeline, JsonLinesAlertSink(discard))
    left = producer.flush(settings.runtime.shutdown_timeout)
    print(
        f"{summary.lines} lines, {route.sent} candidates produced to "
        f"{settings.topics.repartition} as history, {route.failed} failed, {left} not sent",
        file=sys.stderr,
    )
    return EXIT_OK if left == 0 and route.failed == 0 else EXIT_FATAL
