"""Elasticsearch EQL single-event queries (``any where ...``) compiled to per-event predicates.

Semantics follow Elasticsearch EQL as it translates a query to Query DSL; the rules, what is
refused at load and the evidence are in ``docs/eql-semantics.md``.
"""

from auditstream.detections.eql.compiler import CATEGORY_FIELD, EqlPredicate, compile_eql
from auditstream.detections.eql.functions import FUNCTIONS, FunctionSpec
from auditstream.detections.eql.parser import SEQUENCE_REFUSED, parse_eql

__all__ = [
    "CATEGORY_FIELD",
    "FUNCTIONS",
    "SEQUENCE_REFUSED",
    "EqlPredicate",
    "FunctionSpec",
    "compile_eql",
    "parse_eql",
]
