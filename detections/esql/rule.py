"""An Elastic ES|QL rule file compiled: metadata, query text and the stage chain.

A query with ``STATS`` compiles to a :class:`StatefulRule` instead: its commands before
``STATS`` become a per-event :class:`EsqlRule` (the selector), the rest a window
(:mod:`auditstream.detections.stateful.stats`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from auditstream.detections.errors import DetectionError
from auditstream.detections.esql import ast
from auditstream.detections.esql.compiler import CompiledQuery, compile_query
from auditstream.detections.esql.parser import parse_query
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.rule import StatefulRule, selector_id
from auditstream.detections.stateful.stats import plan_stats


@dataclass(frozen=True, slots=True)
class EsqlRule:
    """An Elastic ES|QL rule compiled into a stage chain."""

    meta: RuleMeta
    query_text: str
    query: CompiledQuery
    path: str
    cases: tuple[RuleCase, ...] = ()


def compile_esql_rule(
    table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> EsqlRule | StatefulRule:
    """Compile one ``[rule]`` table whose language is ES|QL; raises DetectionError."""
    meta = RuleMeta.from_rule_table(table)
    query_text = table.get("query")
    if not isinstance(query_text, str):
        raise DetectionError("[rule] query is missing")
    query_text = query_text.strip("\n")
    parsed = parse_query(query_text)
    if not meta.index:  # an ES|QL rule names its indices in FROM
        meta = replace(meta, index=parsed.source.sources)
    if any(isinstance(command, ast.Stats) for command in parsed.commands):
        plan = plan_stats(parsed, meta)
        selector_meta = replace(meta, rule_id=selector_id(meta.rule_id, 0))
        selector = EsqlRule(selector_meta, query_text, compile_query(plan.selector_query), path)
        return plan.rule(meta, selector, path, cases)
    return EsqlRule(meta, query_text, compile_query(parsed), path, cases)
