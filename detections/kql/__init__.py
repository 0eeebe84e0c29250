"""Kibana Query Language (KQL, "kuery") compiled to per-document predicates.

Semantics follow Kibana's grammar and the Query DSL the detection engine sends for each node,
read against the integration's mapping; the rules, what is refused at load and the evidence are
in ``docs/kql-semantics.md``.
"""

from auditstream.detections.kql.compiler import KqlPredicate, compile_kql, field_kind
from auditstream.detections.kql.parser import parse_kql

__all__ = ["KqlPredicate", "compile_kql", "field_kind", "parse_kql"]
