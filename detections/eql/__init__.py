"""Elasticsearch EQL single-event queries (``any where ...``) compiled to per-event predicates.

Semantics follow Elasticsearch EQL as it translates a query to Query DSL; the rules, what is
refused at load and the evidence are in ``docs/eql-semantics.md``. A ``sequence`` is parsed here
(:func:`parse_eql_statement`) and runs as a stateful rule
(:mod:`auditstream.detections.stateful.sequence`, ``docs/eql-sequence-semantics.md``).
"""

from auditstream.detections.eql.compiler import (
    CATEGORY_FIELD,
    EqlPredicate,
    compile_eql,
    compile_event_query,
)
from auditstream.detections.eql.functions import FUNCTIONS, FunctionSpec
from auditstream.detections.eql.parser import SEQUENCE_REFUSED, parse_eql, parse_eql_statement

__all__ = [
    "CATEGORY_FIELD",
    "FUNCTIONS",
    "SEQUENCE_REFUSED",
    "EqlPredicate",
    "FunctionSpec",
    "compile_eql",
    "compile_event_query",
    "parse_eql",
    "parse_eql_statement",
]
