"""An Elastic EQL rule file compiled: metadata, query text and the predicate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.eql.compiler import EqlPredicate, compile_eql
from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.indices import require_audit_index
from auditstream.detections.ruleset.meta import RuleMeta


@dataclass(frozen=True, slots=True)
class EqlRule:
    meta: RuleMeta
    query: EqlPredicate
    path: str
    cases: tuple[RuleCase, ...] = ()

    @property
    def required_values(self) -> Mapping[str, frozenset[str]]:
        return self.query.required_values

    @property
    def reads(self) -> frozenset[str]:
        return self.query.fields

    def matches(self, document: ElasticDocument) -> bool:
        return self.query.predicate(document)


def compile_eql_rule(
    table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> EqlRule:
    """Compile one ``[rule]`` table whose language is EQL; raises DetectionError."""
    meta = RuleMeta.from_rule_table(table)
    require_audit_index(meta)
    text = table.get("query")
    if not isinstance(text, str):
        raise DetectionError("[rule] query is missing")
    return EqlRule(meta, compile_eql(text.strip("\n")), path, cases)
