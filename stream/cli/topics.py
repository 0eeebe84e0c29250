"""``auditstream topics create`` and ``auditstream topics check``: the service's topics, from the
same settings as ``run`` (``--config`` TOML, ``AUDITSTREAM_*`` variables, flags; the ``[kafka]``
table's SASL and TLS properties), as text or ``--json``.

Exit codes, so that a deployment job can tell a topic to look at from a broker to wait for:

- 0: every topic exists as we would create it (``create``: created now or already there);
- 1: a topic differs from what we would create (or, for ``check``, is missing): reported with
  what differs, never altered;
- 2: invalid settings, or a creation the broker refused for its settings (a replication factor
  above the number of brokers, an invalid topic config), naming the setting;
- 4: no broker answered within ``admin_timeout``, or it refused us (authentication,
  authorization).

Nothing printed shows a secret: errors go through the same masking as ``run``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from auditstream.detections.ruleset.loader import load_rules
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.stream.cli.run import flags_from_args
from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.topics import (
    BROKER_DEFAULT,
    TopicReport,
    TopicSpec,
    TopicsReport,
    TopicsUnavailable,
    ensure_topics,
)
from auditstream.stream.logs import configure_logging
from auditstream.stream.settings import load_settings
from auditstream.stream.settings_types import REDACTED, Settings, redact_text

EXIT_OK: Final = 0
EXIT_DIFFERS: Final = 1
EXIT_CONFIG: Final = 2
EXIT_UNAVAILABLE: Final = 4
_NOT_SETTINGS: Final = ("topics_command", "json", "alert_topic_config", "dead_letter_topic_config")
_ROLES: Final = {"input": "input", "alerts": "alerts", "dead_letters": "dead letters"}


def add_topics_parser(commands: Any) -> None:
    """``topics create`` and ``topics check`` (``commands``: the top-level subparsers)."""
    topics = commands.add_parser("topics", help="create or check the topics the service needs")
    actions = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    for action, text in (
        ("create", "create the missing topics; report those that differ (never altered)"),
        ("check", "report only: what exists, what differs, what create would create"),
    ):
        parser = actions.add_parser(
            action, help=text, description=f"{text}. Settings as for run; see docs/topics.md."
        )
        _add_options(parser)


def _add_options(parser: argparse.ArgumentParser) -> None:
    hide = argparse.SUPPRESS
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help="TOML settings")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    for flag, metavar, text in (
        ("--bootstrap-servers", "HOSTS", "Kafka bootstrap servers (host:port,...)"),
        ("--input-pattern", "REGEX", "the input topics as a pattern (cannot be created)"),
        ("--alert-topic", "TOPIC", "where alerts go"),
        ("--dead-letter-topic", "TOPIC", "where input that is not audit data goes"),
        (
            "--group-id",
            "ID",
            "consumer group: names the stateful rules' topics (default auditstream)",
        ),
        ("--topic-partitions", "N", "partitions of each topic created (default 6)"),
        ("--topic-replication-factor", "N", "replicas (default -1: the broker's default)"),
        ("--alert-retention-ms", "MS", "-1 (default): compact only; else compact,delete"),
        ("--dead-letter-retention-ms", "MS", "how long dead letters stay (default 14 days)"),
        ("--admin-timeout", "S", "seconds for the whole command (default 30)"),
    ):
        parser.add_argument(flag, default=hide, metavar=metavar, help=text)
    for flag, text in (
        ("--alert-topic-config", "a further config of the alert topic (repeatable)"),
        ("--dead-letter-topic-config", "a further config of the dead-letter topic (repeatable)"),
    ):
        parser.add_argument(flag, action="append", default=hide, metavar="NAME=VALUE", help=text)
    parser.add_argument(
        "--input-topic", dest="input_topics", action="append", default=hide, metavar="TOPIC",
        help="an input topic (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--rules", action="append", default=hide, metavar="PATH",
        help="rules the service loads: a stateful one adds its repartition and changelog topics",
    )  # fmt: skip
    parser.add_argument(
        "--with-input", dest="create_input_topic", action="store_const", const=True,
        default=hide, help="also create the input topics",
    )  # fmt: skip
    parser.add_argument(
        "-X", "--kafka", dest="kafka", action="append", default=hide, metavar="KEY=VALUE",
        help="a librdkafka property (repeatable); secrets: use the environment",
    )  # fmt: skip


def _stateful(settings: Settings) -> bool:
    """Do the configured rules include a stateful one (so its two topics are wanted)?"""
    rules = load_rules(settings.rules.paths, builtin=settings.rules.builtin).rules
    return any(isinstance(rule, StatefulRule) for rule in rules)


def topics_command(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    create = args.topics_command == "create"
    try:
        settings = load_settings(args.config, os.environ if environ is None else environ,
                                 _flags(args))  # fmt: skip
    except SettingsError as err:
        return _fail(args, out, f"invalid configuration: {err}", EXIT_CONFIG, ())
    secrets = settings.secret_values()
    configure_logging(settings.log.format, settings.log.level, secrets=secrets)
    try:
        report = ensure_topics(settings, create=create, stateful=_stateful(settings))
    except SettingsError as err:
        return _fail(args, out, f"invalid configuration: {err}", EXIT_CONFIG, secrets)
    except TopicsUnavailable as err:
        return _fail(args, out, str(err), EXIT_UNAVAILABLE, secrets)
    code = EXIT_OK if report.as_desired else EXIT_DIFFERS
    if args.json:
        text = json.dumps(report_json(report, settings, args.topics_command, code), indent=2)
    else:
        text = render_text(report, create=create)
    print(_mask(text, secrets), file=out)
    return code


def _flags(args: argparse.Namespace) -> dict[str, object]:
    """The settings given as flags; repeated topic configs joined as the setting spells them."""
    given = vars(args)
    settings_only = {k: v for k, v in given.items() if k not in _NOT_SETTINGS}
    flags = flags_from_args(argparse.Namespace(**settings_only))
    for name in ("alert_topic_config", "dead_letter_topic_config"):
        if name in given:
            flags[name] = ",".join(given[name])
    return flags


def _fail(
    args: argparse.Namespace, out: TextIO, message: str, code: int, secrets: Sequence[str]
) -> int:
    shown = _mask(message, secrets)
    print(f"auditstream: {shown}", file=sys.stderr)
    if getattr(args, "json", False):
        answer = {"command": args.topics_command, "exit_code": code, "error": shown}
        print(json.dumps(answer, indent=2), file=out)
    return code


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return redact_text(text)


# -- rendering ---------------------------------------------------------------------------------


def render_text(report: TopicsReport, *, create: bool) -> str:
    lines: list[str] = []
    width = max((len(r.spec.name) for r in report.topics), default=0)
    for topic in report.topics:
        status = topic.status.upper() if topic.status in ("differs", "missing") else topic.status
        wanted = ("we would create: " if topic.status == "differs" else "") + _describe(topic.spec)
        lines.append(
            f"{status:<8} {_ROLES[topic.spec.role]:<12} {topic.spec.name:<{width}}  {wanted}"
        )
        for difference in topic.differences:
            lines.append(
                f"    {difference.what}: found {difference.found}, wanted {difference.wanted}"
            )
        if topic.status == "differs":
            lines.append("    left as it is (auditstream never alters a topic)")
    lines.append(_summary(report, create=create))
    return "\n".join(lines)


def _describe(spec: TopicSpec) -> str:
    replicas = spec.replication_factor
    shown = "the broker's default" if replicas == BROKER_DEFAULT else str(replicas)
    configs = "".join(f", {name}={value}" for name, value in spec.config.items())
    return f"{spec.partitions} partitions, replication factor {shown}{configs}"


def _summary(report: TopicsReport, *, create: bool) -> str:
    counts: dict[str, int] = {}
    for topic in report.topics:
        counts[topic.status] = counts.get(topic.status, 0) + 1
    words = {
        "created": "created",
        "exists": "already as wanted",
        "differs": "differ (not changed)",
        "missing": "missing (create would create them)",
    }
    parts = [f"{counts[s]} {words[s]}" for s in words if s in counts]
    verdict = "all topics as wanted" if report.as_desired else "some topics are not as wanted"
    mode = "" if create else " (check: nothing was changed)"
    return f"{verdict}: {', '.join(parts)}{mode}"


def report_json(
    report: TopicsReport, settings: Settings, command: str, code: int
) -> dict[str, object]:
    return {
        "command": command,
        "bootstrap_servers": redact_text(settings.kafka.bootstrap_servers),
        "as_desired": report.as_desired,
        "exit_code": code,
        "topics": [_topic_json(topic) for topic in report.topics],
    }


def _topic_json(topic: TopicReport) -> dict[str, object]:
    spec, found = topic.spec, topic.found
    return {
        "role": spec.role,
        "name": spec.name,
        "status": topic.status,
        "wanted": {
            "partitions": spec.partitions,
            "replication_factor": spec.replication_factor,
            "config": dict(spec.config),
        },
        "found": None
        if found is None
        else {
            "partitions": found.partitions,
            "replication_factor": found.replication_factor,
            "config": dict(found.config),
        },
        "differences": [
            {"what": d.what, "found": d.found, "wanted": d.wanted} for d in topic.differences
        ],
    }
