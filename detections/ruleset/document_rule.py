"""A rule whose query runs on the indexed Elastic document (KQL, EQL): one shape for both.

Each language contributes a compiler ``text -> query`` whose result has the predicate, the
fields it reads and the values it exactly requires (see
:mod:`auditstream.detections.ruleset.rule_index`); everything else about such a rule (metadata,
the index check, how its family runs it) is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.indices import require_audit_index
from auditstream.detections.ruleset.meta import RuleMeta


class DocumentQuery(Protocol):
    @property
    def query(self) -> str: ...

    @property
    def predicate(self) -> Callable[[ElasticDocument], bool]: ...

    @property
    def fields(self) -> frozenset[str]: ...

    @property
    def required_values(self) -> Mapping[str, frozenset[str]]: ...

    @property
    def required_present(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class DocumentRule:
    meta: RuleMeta
    query: DocumentQuery
    path: str
    cases: tuple[RuleCase, ...] = ()

    @property
    def required_values(self) -> Mapping[str, frozenset[str]]:
        return self.query.required_values

    @property
    def required_present(self) -> frozenset[str]:
        return self.query.required_present

    @property
    def reads(self) -> frozenset[str]:
        return self.query.fields

    def matches(self, document: ElasticDocument) -> bool:
        return self.query.predicate(document)


@dataclass(frozen=True, slots=True)
class KqlRule(DocumentRule):
    """An Elastic ``kuery`` query rule."""


@dataclass(frozen=True, slots=True)
class EqlRule(DocumentRule):
    """An Elastic EQL single-event rule."""


def document_rule_compiler(
    rule_class: type[DocumentRule], compile_query: Callable[[str], DocumentQuery]
) -> Callable[[Mapping[str, Any], str, tuple[RuleCase, ...]], DocumentRule]:
    """The ``[rule]`` table compiler of one document language."""

    def compile_table(
        table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
    ) -> DocumentRule:
        meta = RuleMeta.from_rule_table(table)
        require_audit_index(meta)
        text = table.get("query")
        if not isinstance(text, str):
            raise DetectionError("[rule] query is missing")
        return rule_class(meta, compile_query(text.strip("\n")), path, cases)

    return compile_table
