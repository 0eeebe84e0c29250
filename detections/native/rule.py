"""Native rules as data: a TOML file (metadata, predicate name, example cases) bound to code.

A native rule file is an Elastic detection-rules style TOML whose ``[rule]`` has
``type = "native"``, ``language = "python"``, ``predicate`` (a key of
:data:`~auditstream.detections.native.registry.PREDICATES`) and ``parity_rule_id`` (the Elastic
rule of the same intent). Its top-level ``[[cases]]`` are example exec requests with the
expected outcome, run by ``auditstream rules test``. Everything is validated once at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.meta import RuleMeta, RuleMetaError

from .registry import PREDICATES
from .types import NativePredicate


@dataclass(frozen=True, slots=True)
class NativeRule:
    """A loaded native rule: metadata for alerts, the bound predicate and its cases."""

    meta: RuleMeta
    predicate_name: str
    predicate: NativePredicate
    parity_rule_id: str
    path: str
    cases: tuple[RuleCase, ...] = ()


def compile_native_rule(
    rule: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> NativeRule:
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
        path=path,
        cases=cases,
    )
