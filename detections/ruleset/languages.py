"""The rule languages auditstream runs, one table entry each: the extension point for a new one.

A language is a sibling of the others. It brings a compiler from a rule file's ``[rule]`` table
to its compiled rule (which carries ``meta``, ``path`` and ``cases``) and a *family*: the object
that evaluates all loaded rules of that language over an event, sharing what they share. Every
family answers the same two questions (:class:`RuleFamily`); the detector asks each family and
knows nothing else about any language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from auditstream.detections.errors import DetectionError
from auditstream.detections.esql.evaluator import EsqlFamily
from auditstream.detections.esql.rule import EsqlRule, compile_esql_rule
from auditstream.detections.event_view import EventView
from auditstream.detections.kql import compile_kql
from auditstream.detections.native import NativeFamily, NativeRule, compile_native_rule
from auditstream.detections.rule_hit import RuleHit
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.document_family import DocumentFamily
from auditstream.detections.ruleset.document_rule import (
    DocumentRule,
    EqlRule,
    KqlRule,
    document_rule_compiler,
)
from auditstream.detections.sigma.family import SigmaFamily
from auditstream.detections.sigma.rule import SigmaRule
from auditstream.detections.stateful.new_terms import compile_new_terms
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.detections.stateful.sequence import compile_eql_rule

LoadedRule = EsqlRule | DocumentRule | NativeRule | SigmaRule | StatefulRule
"""Every compiled rule has ``meta`` (:class:`RuleMeta`), ``path`` and ``cases``. A
:class:`StatefulRule` is evaluated through its selectors (per-event rules of its language)."""


class RuleFamily(Protocol):
    """All loaded rules of one language, evaluated together; stateless between events."""

    def fires_on_nothing(self, audit: Mapping[str, Any]) -> bool:
        """True only when no rule of the family can fire on the event of this audit object.

        Asked only of events that are not exec requests (the detector rules those out first).
        """
        ...

    def hits(self, view: EventView) -> list[RuleHit]:
        """The family's hits on one event (its request and Elastic document on the view)."""
        ...


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    rule_type: type[Any]
    claims: Callable[[Mapping[str, Any]], bool]
    """Does a ``[rule]`` table belong to this language?"""
    compile: Callable[[Mapping[str, Any], str, tuple[RuleCase, ...]], LoadedRule]
    family: Callable[[Sequence[Any], bool], RuleFamily]
    """Build the family of the loaded rules (``bool``: use the language's exact shortcuts)."""
    shape_independent: bool = False
    """Must its verdicts be the same on a raw event and on the event's ECS document? (Its
    cases are then run in both shapes.) Elastic's languages read the indexed document, where
    the two shapes may differ as Elasticsearch would see them."""


def _language_key(table: Mapping[str, Any]) -> str:
    return str(table.get("language", "")).lower()


def _document_family(rules: Sequence[Any], shortcuts: bool) -> RuleFamily:
    return DocumentFamily(rules, shortcuts=shortcuts)


def _sigma_in_toml(
    _table: Mapping[str, Any], _path: str, _cases: tuple[RuleCase, ...]
) -> LoadedRule:
    raise DetectionError("Sigma rules are YAML files (.yml or .yaml), not a TOML [rule] table")


LANGUAGES: tuple[Language, ...] = (
    Language(
        name="esql",
        rule_type=EsqlRule,
        claims=lambda t: _language_key(t) == "esql",
        compile=compile_esql_rule,
        family=lambda rules, gate: EsqlFamily(rules, gate=gate),
    ),
    Language(
        name="kuery",
        rule_type=KqlRule,
        claims=lambda t: _language_key(t) == "kuery",
        compile=document_rule_compiler(KqlRule, compile_kql),
        family=_document_family,
    ),
    Language(
        name="eql",
        rule_type=EqlRule,
        claims=lambda t: _language_key(t) == "eql",
        compile=compile_eql_rule,
        family=_document_family,
    ),
    Language(
        name="native",
        rule_type=NativeRule,
        claims=lambda t: _language_key(t) == "python" or t.get("type") == "native",
        compile=compile_native_rule,
        family=lambda rules, _gate: NativeFamily(rules),
    ),
    Language(
        name="sigma",
        rule_type=SigmaRule,
        claims=lambda t: _language_key(t) == "sigma",
        compile=_sigma_in_toml,
        family=lambda rules, shortcuts: SigmaFamily(rules, shortcuts=shortcuts),
        shape_independent=True,
    ),
)


RuleCompiler = Callable[[Mapping[str, Any], str, tuple[RuleCase, ...]], LoadedRule]

STATEFUL_COMPILERS: Mapping[str, RuleCompiler] = MappingProxyType({"new_terms": compile_new_terms})
"""detection-rules' rule types whose memory is not a language's own construct, by ``type``
(ES|QL ``STATS`` and EQL ``sequence`` are: their languages' compilers return a
:class:`StatefulRule` for them)."""

UNSUPPORTED_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "threshold": "counts events per group over a window",
        "threat_match": "joins events with an indicator index",
        "machine_learning": "reads anomaly-detection jobs",
    }
)
"""detection-rules' rule types auditstream does not run: each is reported, with what it needs,
rather than run as if it were per-event."""


def compile_rule(
    table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> LoadedRule:
    """Compile one ``[rule]`` table in whichever language claims it; raises DetectionError."""
    rule_type = str(table.get("type", ""))
    if rule_type in UNSUPPORTED_TYPES:
        raise DetectionError(
            f"type {rule_type} is not supported: it {UNSUPPORTED_TYPES[rule_type]}"
        )
    stateful = STATEFUL_COMPILERS.get(rule_type)
    if stateful is not None:
        return stateful(table, path, cases)
    for language in LANGUAGES:
        if language.claims(table):
            return language.compile(table, path, cases)
    names = ", ".join(language.name for language in LANGUAGES)
    raise DetectionError(
        f"language {_language_key(table) or 'unknown'} is not supported "
        f"(auditstream runs {names} rules)"
    )


def language_of(rule: LoadedRule) -> Language:
    if isinstance(rule, StatefulRule):
        return next(language for language in LANGUAGES if language.name == rule.language)
    for language in LANGUAGES:
        if isinstance(rule, language.rule_type):
            return language
    raise TypeError(f"{type(rule).__name__} is not a rule of any registered language")


def families(rules: Sequence[LoadedRule], *, shortcuts: bool = True) -> list[RuleFamily]:
    """One family per family builder that has loaded rules, in registry order: languages that
    share a builder (KQL and EQL both query the Elastic document) share one family, so an
    event is indexed and its document built once for both."""
    grouped: dict[Callable[[Sequence[Any], bool], RuleFamily], list[LoadedRule]] = {}
    per_event = [
        selector.rule
        for rule in rules
        if isinstance(rule, StatefulRule)
        for selector in rule.selectors
    ] + [rule for rule in rules if not isinstance(rule, StatefulRule)]
    for language in LANGUAGES:
        mine = [rule for rule in per_event if isinstance(rule, language.rule_type)]
        if mine:
            grouped.setdefault(language.family, []).extend(mine)
    return [build(members, shortcuts) for build, members in grouped.items()]
