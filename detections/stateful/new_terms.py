"""Elastic's ``new_terms`` rule type on the stream: alert when a combination of values is new.

A new-terms rule is a KQL query (which events count) plus up to three *new terms fields* and a
*history window* (``history_window_start = "now-7d"``). Kibana runs it every few minutes and
alerts once for every combination of the fields' values that occurs in the run's interval but
nowhere in the history window before it. Here the query is an ordinary KQL selector, each event
that passes it gives one candidate per combination (the group key), and
:class:`NewTermsOperator` remembers, per combination, the event that introduced it and when it
was last seen. Every choice, with the Kibana and Elasticsearch source it follows, is in
``docs/new-terms-semantics.md``.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

import orjson

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.fields import field_type
from auditstream.detections.elastic.indexing import INDEXERS, Key
from auditstream.detections.errors import DetectionError
from auditstream.detections.event_view import EventView
from auditstream.detections.kql import compile_kql, field_kind
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.document_rule import KqlRule
from auditstream.detections.ruleset.indices import require_audit_index
from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.candidate import Candidate
from auditstream.detections.stateful.operator import State, StatefulHit, Step
from auditstream.detections.stateful.rule import (
    KeyedRow,
    Keyer,
    Selector,
    StatefulRule,
    selector_id,
)

__all__ = [
    "NEW_TERMS_FIELD",
    "NewTermsOperator",
    "compile_new_terms",
    "parse_history_window",
    "term_reader",
]

NEW_TERMS_FIELD: Final = "new_terms"
"""The hit's column with the combination's values (Kibana's ``kibana.alert.new_terms``)."""
MAX_FIELDS: Final = 3
"""Kibana's ``MAX_NUMBER_OF_NEW_TERMS_FIELDS``: a rule names one to three fields."""

_UNIT_MS: Final[Mapping[str, int]] = MappingProxyType(
    {"s": 1_000, "m": 60_000, "h": 3_600_000, "H": 3_600_000, "d": 86_400_000, "w": 604_800_000}
)
_RELATIVE: Final = re.compile(r"now-(\d+)([smhHdw])")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_REFUSED_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "text": "text fields are not aggregatable (Elasticsearch refuses the terms aggregation)",
        "object": "it is an object; name one of its fields",
        "float": "the text of a floating-point term (Java's Double.toString) is not reproduced",
        "date": "date terms are not supported",
        "unmapped": "the data stream does not index it, so Elastic finds no terms and the rule "
        "never alerts",
    }
)

TermReader = Callable[[ElasticDocument], tuple[str, ...]]


# --- the history window --------------------------------------------------------------------------


def parse_history_window(text: str) -> int:
    """``now-7d`` -> milliseconds. Date math with a fixed length only (``s m h H d w``): months
    and years have no fixed length, and rounding (``/d``) would move the window with the clock;
    both are refused rather than approximated."""
    found = _RELATIVE.fullmatch(text.strip())
    if found is None:
        raise DetectionError(
            f"history_window_start {text!r} is not supported: auditstream reads now-<n><unit> "
            "with unit s, m, h, d or w"
        )
    amount = int(found.group(1)) * _UNIT_MS[found.group(2)]
    if amount <= 0:
        raise DetectionError(f"history_window_start {text!r} is an empty window")
    return amount


# --- the terms of one field ----------------------------------------------------------------------


def term_reader(name: str) -> TermReader:
    """The terms ``name`` contributes to a combination, as the terms aggregation (and ES|QL)
    reads them: the field's indexed values (doc values: deduplicated, in their sorted order),
    each as the text of its bucket key. Decided once, at load."""
    kind = field_kind(name)
    if kind in _REFUSED_KINDS or kind.startswith("unsupported:"):
        why = _REFUSED_KINDS.get(kind, f"fields of type {kind.split(':', 1)[-1]} are refused")
        raise DetectionError(f"new terms field {name} cannot be used: {why}")
    mapped = field_type(name) or ""
    indexed = INDEXERS[kind]
    text = _TEXT_OF_KIND.get(kind, _keyword_term)

    def read(document: ElasticDocument) -> tuple[str, ...]:
        keys = indexed(document.values(name), mapped)
        if not keys:
            return ()
        return tuple(text(key) for key in sorted(set(keys), key=_sort_key))

    return read


def _sort_key(key: Key) -> tuple[int, Any]:
    """Doc-values order: strings by their UTF-8 bytes, the rest by value."""
    if isinstance(key, str):
        return (1, key.encode("utf-8", "surrogatepass"))
    return (0, key)


def _keyword_term(key: Key) -> str:
    """Lucene stores a term as UTF-8; a lone surrogate (a JSON escape can carry one) becomes
    U+FFFD there, as Java's ``UnicodeUtil.UTF16toUTF8`` writes it."""
    text = str(key)
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _ip_term(key: Key) -> str:
    """An address as Elasticsearch prints an ip key (``NetworkAddress.format``): IPv4 (also an
    IPv4-mapped IPv6 address) dotted, IPv6 in RFC 5952's compressed lower-case form."""
    assert isinstance(key, int)
    address = ipaddress.IPv6Address(key)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


def _boolean_term(key: Key) -> str:
    return "true" if key else "false"


def _integer_term(key: Key) -> str:
    return str(key)


_TEXT_OF_KIND: Final[Mapping[str, Callable[[Key], str]]] = MappingProxyType(
    {"ip": _ip_term, "boolean": _boolean_term, "integer": _integer_term}
)


def combination_keyer(readers: Sequence[TermReader]) -> Keyer:
    """Every combination of the fields' terms (their Cartesian product, in field order), one
    group key each; none when a field has no term (the event is in no combination)."""

    def keys(view: EventView, _hit: RuleHit) -> list[KeyedRow]:
        document = view.elastic
        per_field: list[tuple[str, ...]] = []
        for read in readers:
            terms = read(document)
            if not terms:
                return []
            per_field.append(terms)
        return [(combination, {}) for combination in itertools.product(*per_field)]

    return keys


# --- the operator --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewTermsOperator:
    """One combination's memory: the event that introduced it, and when it was last seen.

    State: ``{"first": event id, "first_ms": its time, "last_ms": newest time seen,
    "alerted": whether the first event alerted}``. A candidate is *new* when the combination has
    no state or was last seen more than the history window before it; a new candidate becomes
    the combination's first event (and alerts when ``alerting``). The first event seen again is a
    replay: the same hit again (if it alerted), the state untouched.
    """

    history_ms: int

    @property
    def retention_ms(self) -> int:
        return self.history_ms

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        time_ms = candidate.time_ms
        if state is not None and state["first"] == candidate.event_id:
            return Step(state, (self._hit(candidate),) if alerting and state["alerted"] else ())
        if state is None or time_ms - int(state["last_ms"]) > self.history_ms:
            fresh: State = {
                "first": candidate.event_id,
                "first_ms": time_ms,
                "last_ms": time_ms,
                "alerted": alerting,
            }
            return Step(fresh, (self._hit(candidate),) if alerting else ())
        if time_ms <= int(state["last_ms"]):
            return Step(state)  # seen at or after this time already (a late or repeated event)
        return Step({**state, "last_ms": time_ms})

    def expire(self, state: State, watermark_ms: int) -> State | None:
        """Gone once no candidate the runtime still accepts (none is older than the watermark)
        could find it inside its history window."""
        return None if int(state["last_ms"]) < watermark_ms - self.history_ms else state

    @staticmethod
    def _hit(candidate: Candidate) -> StatefulHit:
        terms = tuple(str(value) for value in candidate.key)
        basis = candidate.event_id + "|" + orjson.dumps(list(terms)).decode()
        return StatefulHit(
            basis=basis,
            trigger=candidate,
            fields={NEW_TERMS_FIELD: terms},
            events=(candidate.event_id,),
        )


# --- the [rule] table ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewTermsSpec:
    """``[rule.new_terms]`` as detection-rules writes it."""

    fields: tuple[str, ...]
    history_window_start: str
    history_ms: int


def parse_new_terms(table: Mapping[str, Any]) -> NewTermsSpec:
    spec = table.get("new_terms")
    if not isinstance(spec, Mapping):
        raise DetectionError(
            "[rule.new_terms] is missing: a new_terms rule names its fields and history there"
        )
    if spec.get("field", "new_terms_fields") != "new_terms_fields":
        raise DetectionError("[rule.new_terms] field must be new_terms_fields")
    fields = spec.get("value")
    if (
        not isinstance(fields, list)
        or not fields
        or not all(isinstance(name, str) and name for name in fields)
    ):
        raise DetectionError("[rule.new_terms] value must be a list of field names")
    if len(fields) > MAX_FIELDS:
        raise DetectionError(f"a new_terms rule names at most {MAX_FIELDS} fields (Kibana's limit)")
    if len(set(fields)) != len(fields):
        raise DetectionError("[rule.new_terms] names a field twice (Elasticsearch refuses it)")
    window = _history_window_start(spec.get("history_window_start"))
    return NewTermsSpec(tuple(fields), window, parse_history_window(window))


def _history_window_start(raw: object) -> str:
    entries = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        raise DetectionError("[[rule.new_terms.history_window_start]] is missing")
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("field") == "history_window_start":
            value = entry.get("value")
            if isinstance(value, str) and value.strip():
                return value
    raise DetectionError("[[rule.new_terms.history_window_start]] has no value")


def _check_lookback(meta: RuleMeta, history_ms: int, window: str) -> None:
    """Kibana refuses a history window that starts at or after ``from`` (the run's lookback)."""
    if meta.lookback is None:
        return
    try:
        lookback_ms = parse_history_window(meta.lookback)
    except DetectionError:
        return  # not a relative time we read; the window is ours to judge, not `from`
    if history_ms <= lookback_ms:
        raise DetectionError(
            f"history_window_start {window} must be earlier than from {meta.lookback} "
            "(Kibana refuses the rule)"
        )


def compile_new_terms(
    table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> StatefulRule:
    """A detection-rules ``type = "new_terms"`` table -> its stateful rule; raises
    DetectionError naming what cannot run."""
    meta = RuleMeta.from_rule_table(table)
    require_audit_index(meta)
    if meta.language != "kuery":
        raise DetectionError(
            f"language {meta.language} is not supported for new_terms rules (they are kuery)"
        )
    text = table.get("query")
    if not isinstance(text, str):
        raise DetectionError("[rule] query is missing")
    spec = parse_new_terms(table)
    _check_lookback(meta, spec.history_ms, spec.history_window_start)
    readers = [term_reader(name) for name in spec.fields]
    query = compile_kql(text.strip("\n"))
    selector_meta = replace(meta, rule_id=selector_id(meta.rule_id, 0))
    selector = Selector(
        rule=KqlRule(selector_meta, query, path), stage=0, keys=combination_keyer(readers)
    )
    return StatefulRule(
        meta=meta,
        path=path,
        language="kuery",
        kind="new_terms",
        selectors=(selector,),
        operator=NewTermsOperator(spec.history_ms),
        key_names=spec.fields,
        history_ms=spec.history_ms,
        cases=cases,
        details=MappingProxyType(
            {
                "new_terms_fields": list(spec.fields),
                "history_window_start": spec.history_window_start,
            }
        ),
    )
