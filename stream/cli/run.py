"""``auditstream run``: settings from file, environment and flags, then the service until stopped.

Exit codes: 0 stopped cleanly (SIGTERM/SIGINT); 2 invalid configuration (including an HTTP
address that cannot be listened on); 3 rules failed to load; 4 a fatal runtime failure (see
:mod:`auditstream.stream.service`). A second SIGTERM/SIGINT exits at once with 4, leaving the
offsets of unfinished work uncommitted.

Nothing printed here shows a secret: settings errors never quote a secret value and URL
credentials are masked in them; the log lines mask every secret the settings hold
(:func:`auditstream.stream.logs.configure_logging`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

import structlog

from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.errors import SettingsError
from auditstream.stream.logs import configure_logging
from auditstream.stream.settings import TABLES, load_settings
from auditstream.stream.settings_types import Settings, is_secret, redact_text

if TYPE_CHECKING:
    from auditstream.stream.service import Service

EXIT_CONFIG: Final = 2
EXIT_FATAL: Final = 4
"""As :mod:`auditstream.stream.service` defines them (a test ties the two): the service, and the
Kafka client with it, is imported only when ``run`` runs, not by ``scan`` or ``rules``."""

EXIT_RULES = 3


def flags_from_args(args: argparse.Namespace) -> dict[str, object]:
    """The run flags that were given (the others are absent: argparse.SUPPRESS), by setting."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    for table in TABLES:
        if table in given:
            given[table] = _properties(given[table], table)
    return given


def _properties(pairs: list[str], table: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            shown = "a secret's name (not shown)" if is_secret(pair) else repr(pair)
            raise SettingsError(f"expected KEY=VALUE, got {shown}", f"--{table}")
        props[key.strip()] = value
    return props


def run_command(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    try:
        settings = load_settings(args.config, os.environ if environ is None else environ,
                                 flags_from_args(args))  # fmt: skip
    except SettingsError as err:
        print(f"auditstream: invalid configuration: {redact_text(str(err))}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log.format, settings.log.level, secrets=settings.secret_values())
    log = structlog.get_logger("auditstream.run")
    if settings.ignored_env:
        log.warning("unknown_environment_ignored", variables=list(settings.ignored_env))
    rules = load_rules(list(settings.rules.paths), builtin=settings.rules.builtin)
    for problem in rules.problems:
        log.warning(
            "rule_not_loaded", path=problem.path, rule=problem.rule_name, reason=problem.reason
        )
    if not rules.rules or _named_file_failed(settings, {p.path for p in rules.problems}):
        log.error("rules_failed", loaded=len(rules.rules))
        return EXIT_RULES
    log.info("rules_loaded", count=len(rules.rules), ids=[r.meta.rule_id for r in rules.rules])
    from auditstream.stream.service import Service  # noqa: PLC0415 - see EXIT_CONFIG

    service = Service(settings, rules.rules)
    _install_signal_handlers(service)
    try:
        return service.run()
    except OSError as err:  # only the HTTP endpoint's bind escapes Service.run
        where = f"http_host, http_port ({settings.http.host}:{settings.http.port})"
        log.error("invalid_settings", error=str(SettingsError(f"cannot listen: {err}", where)))
        return EXIT_CONFIG


def _named_file_failed(settings: Settings, failed: set[str]) -> bool:
    """As for scan: a rule *file* named in the settings must load; folders only warn."""
    return any(str(path) in failed for path in settings.rules.paths if Path(path).is_file())


def _install_signal_handlers(service: Service) -> None:
    def on_signal(number: int, _frame: FrameType | None) -> None:
        # No logging here: the handler interrupts the loop mid-message, inside its log context.
        if service.stop_requested:
            os.write(2, b"auditstream: second signal, exiting at once\n")
            os._exit(EXIT_FATAL)
        service.stop(signal.Signals(number).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
