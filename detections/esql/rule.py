"""An Elastic ES|QL rule file compiled: metadata, query text and the stage chain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from auditstream.detections.errors import DetectionError
from auditstream.detections.esql.compiler import CompiledQuery, compile_query
from auditstream.detections.esql.parser import parse_query
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.meta import RuleMeta


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
) -> EsqlRule:
    """Compile one ``[rule]`` table whose language is ES|QL; raises DetectionError."""
    meta = RuleMeta.from_rule_table(table)
    query_text = table.get("query")
    if not isinstance(query_text, str):
        raise DetectionError("[rule] query is missing")
    query_text = query_text.strip("\n")
    query = compile_query(parse_query(query_text))
    if not meta.index:  # an ES|QL rule names its indices in FROM
        meta = replace(meta, index=tuple(query.source.sources))
    return EsqlRule(meta, query_text, query, path, cases)
