"""Native rules as data: a TOML file (metadata, predicate name, example cases) bound to code.

A native rule file is an Elastic detection-rules style TOML whose ``[rule]`` has
``type = "native"``, ``language = "python"``, ``predicate`` (a key of
:data:`~auditstream.detections.native.registry.PREDICATES`) and ``parity_rule_id`` (the Elastic
rule of the
same intent). Its top-level ``[[cases]]`` are example exec requests with the expected outcome,
run by the rule test suite. Everything is validated once at load; an unknown predicate or a
malformed case is a :class:`~auditstream.detections.errors.RuleLoadError` naming the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditstream.detections.errors import RuleLoadError
from auditstream.detections.exec.request import ExecRequest, parse_exec_request
from auditstream.detections.exec.shell_words import SimpleCommand, normalise
from auditstream.detections.ruleset.cases import RuleCase, parse_cases
from auditstream.detections.ruleset.meta import RuleMeta, RuleMetaError

from .registry import PREDICATES
from .types import NativeHit, NativePredicate


@dataclass(frozen=True, slots=True)
class NativeRule:
    """A loaded native rule: metadata for alerts, the bound predicate and its cases."""

    meta: RuleMeta
    predicate_name: str
    predicate: NativePredicate
    parity_rule_id: str
    cases: tuple[RuleCase, ...]
    path: str


def prepare(
    request_uri: str, subresource: str | None
) -> tuple[ExecRequest, tuple[SimpleCommand, ...]] | None:
    """Decode and normalise once per event; every native rule reads the same pair."""
    request = parse_exec_request(request_uri, subresource)
    if request is None:
        return None
    return request, normalise(request.argv)


def run_case(rule: NativeRule, case: RuleCase) -> NativeHit | None:
    """Evaluate ``rule`` on one of its cases (``None``: not an exec request or no alert)."""
    prepared = prepare(case.uri, case.subresource)
    return None if prepared is None else rule.predicate(*prepared)


def load_native_rule(path: Path) -> NativeRule:
    """Load and validate one native rule file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        rule = document.get("rule")
        if not isinstance(rule, Mapping):
            raise RuleMetaError("missing [rule] table")
        return native_rule(rule, parse_cases(document), str(path))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RuleMetaError) as err:
        raise RuleLoadError(str(path), str(err)) from err


def native_rule(rule: Mapping[str, Any], cases: tuple[RuleCase, ...], path: str) -> NativeRule:
    """Bind a ``[rule]`` table to its predicate; raises RuleMetaError with the reason."""
    if rule.get("type") != "native" or rule.get("language") != "python":
        raise RuleMetaError('a native rule needs type = "native" and language = "python"')
    name = rule.get("predicate")
    if not isinstance(name, str) or name not in PREDICATES:
        raise RuleMetaError(f"predicate {name!r} is not one of {', '.join(sorted(PREDICATES))}")
    parity = rule.get("parity_rule_id", "")
    if not isinstance(parity, str):
        raise RuleMetaError("parity_rule_id must be a string")
    return NativeRule(
        meta=RuleMeta.from_rule_table(rule),
        predicate_name=name,
        predicate=PREDICATES[name],
        parity_rule_id=parity,
        cases=cases,
        path=path,
    )
