"""Sigma YAML files -> compiled rules, with pySigma as the parser and validator.

A file may hold several YAML documents (rules, ``action: global`` templates, filters, and
correlation rules). pySigma parses and validates every document, merges global templates and
filters into the rules they apply to; this module compiles the rules that read Kubernetes
audit logs and reports each other document with the reason it does not run.

A correlation may name rules of other files of the same load, as pySigma's ``load_ruleset``
allows: every file is parsed first (:func:`parse_sigma_text`), then references are resolved
over all of them and each file compiled (:func:`compile_sigma_files`). A rule that a correlation
references without ``generate: true`` runs only as part of it (the specification's default).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule as PySigmaRule

from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.sigma.compiler import compile_detection
from auditstream.detections.sigma.correlation import compile_correlation
from auditstream.detections.sigma.meta import sigma_meta
from auditstream.detections.sigma.rule import SigmaRule
from auditstream.detections.stateful.rule import StatefulRule

AUDIT_LOGSOURCE: Mapping[str, str] = {"product": "kubernetes", "service": "audit"}
"""The logsource of the rules auditstream runs (SigmaHQ's ``rules/application/kubernetes``)."""


@dataclass(frozen=True, slots=True)
class SigmaProblem:
    rule_name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class SigmaLoadResult:
    rules: tuple[SigmaRule | StatefulRule, ...]
    problems: tuple[SigmaProblem, ...]


@dataclass(frozen=True, slots=True)
class SigmaFile:
    """One Sigma file, parsed by pySigma with its references not resolved yet."""

    path: str
    collection: SigmaCollection | None = None
    problem: SigmaProblem | None = None
    """Why the file has no collection (not YAML, not Sigma, unreadable)."""


def load_sigma_text(text: str, path: str) -> SigmaLoadResult:
    """Every rule of one Sigma file that can run, and a problem for each document that cannot
    (pySigma's validation errors included); never raises for the file's content."""
    return compile_sigma_files([parse_sigma_text(text, path)])[0]


def parse_sigma_text(text: str, path: str) -> SigmaFile:
    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True, resolve_references=False)
    except (SigmaError, ValueError, TypeError) as err:  # not YAML, or not a Sigma document
        return SigmaFile(path, problem=SigmaProblem(None, f"not a Sigma file: {err}"))
    return SigmaFile(path, collection)


def compile_sigma_files(files: Sequence[SigmaFile]) -> list[SigmaLoadResult]:
    """Each file's rules and problems, in order, with correlation references resolved over all
    the files: by id or name, in the correlation's own file first, then in the others."""
    collections = [file.collection for file in files if file.collection is not None]
    lookup = _RuleLookup(collections)
    unresolved: dict[int, list[str]] = {}
    for collection in collections:
        for item in collection.rules:
            if isinstance(item, SigmaCorrelationRule):
                unresolved[id(item)] = lookup.resolve(item, collection)
    return [_compile_file(file, unresolved) for file in files]


def _compile_file(file: SigmaFile, unresolved: Mapping[int, list[str]]) -> SigmaLoadResult:
    if file.collection is None:
        return SigmaLoadResult((), (file.problem,) if file.problem else ())
    output = {id(item) for item in file.collection.get_output_rules()}
    rules: list[SigmaRule | StatefulRule] = []
    problems: list[SigmaProblem] = []
    for item in file.collection.rules:
        if id(item) not in output:
            continue  # referenced by a correlation without generate: true; runs inside it only
        title = getattr(item, "title", None) or None
        if item.errors:
            reasons = "; ".join(str(error) for error in item.errors)
            problems.append(SigmaProblem(title, f"invalid Sigma rule: {reasons}"))
            continue
        try:
            if isinstance(item, SigmaCorrelationRule):
                rules.append(_correlation(item, file.path, unresolved.get(id(item), [])))
            else:
                rules.append(compile_sigma_rule(item, file.path))
        except DetectionError as err:
            problems.append(SigmaProblem(title, str(err)))
        except SigmaError as err:
            problems.append(SigmaProblem(title, f"invalid Sigma rule: {err}"))
    return SigmaLoadResult(tuple(rules), tuple(problems))


def _correlation(item: SigmaCorrelationRule, path: str, unresolved: list[str]) -> StatefulRule:
    if unresolved:
        raise DetectionError("; ".join(unresolved))
    return compile_correlation(item, path, logsource_shown)


Found = PySigmaRule | SigmaCorrelationRule


class _RuleLookup:
    """pySigma's ``SigmaCollection[reference]`` (a UUID, else a name) over several files: the
    referring rule's own file first, then the other files, where a reference defined in more
    than one is ambiguous (pySigma's ``load_ruleset`` would silently take the last)."""

    def __init__(self, collections: Sequence[SigmaCollection]) -> None:
        self.files: list[tuple[SigmaCollection, dict[str, Found]]] = []
        for collection in collections:
            keys: dict[str, Found] = {}
            for rule in collection.rules:
                if rule.id is not None:
                    keys[str(rule.id)] = rule
                if rule.name is not None:
                    keys[rule.name] = rule
            self.files.append((collection, keys))

    def find(self, reference: str, own: SigmaCollection) -> Found | str:
        """The rule, or why there is none."""
        try:
            key = str(uuid.UUID(reference))
        except ValueError:
            key = reference
        for collection, keys in self.files:
            if collection is own and key in keys:
                return keys[key]
        found = [keys[key] for collection, keys in self.files if key in keys]
        if not found:
            return f"referenced rule {reference!r} is not found in the rules loaded"
        if len(found) > 1:
            return f"referenced rule {reference!r} is defined in {len(found)} other files"
        return found[0]

    def resolve(self, correlation: SigmaCorrelationRule, own: SigmaCollection) -> list[str]:
        """Point the correlation's references (and its aliases') at their rules, and silence
        the rules it references unless it says ``generate: true``, as pySigma's
        ``resolve_rule_references`` does; returns why each reference not resolved is not."""
        condition = correlation.condition
        if correlation.rules is not None:
            references = list(correlation.rules)
        elif isinstance(condition, SigmaExtendedCorrelationCondition):
            references = [SigmaRuleReference(n) for n in condition.get_referenced_rules()]
        else:
            references = []
        correlation.referenced_rules = references
        unresolved = []
        for reference in references:
            rule = self.find(str(reference.reference), own)
            if isinstance(rule, str):
                unresolved.append(rule)
                continue
            reference.rule = rule
            rule.add_backreference(correlation)
            if not correlation.generate:
                rule.disable_output()
        for alias in correlation.aliases:
            for alias_reference in alias.mapping:
                found = self.find(str(alias_reference.reference), own)
                if not isinstance(found, str):
                    alias_reference.rule = found
        return unresolved


def compile_sigma_rule(rule: PySigmaRule, path: str, cases: tuple[RuleCase, ...] = ()) -> SigmaRule:
    """Compile one parsed rule; raises DetectionError naming what cannot run."""
    shown_source = logsource_shown(rule)
    return SigmaRule(sigma_meta(rule), compile_detection(rule), path, shown_source, cases)


def logsource_shown(rule: PySigmaRule) -> str:
    """The rule's logsource as ``rules show`` prints it; raises DetectionError when it is not
    Kubernetes audit logs."""
    logsource = rule.logsource
    stated = {"product": logsource.product, "service": logsource.service}
    if any((stated[key] or "").lower() != want for key, want in AUDIT_LOGSOURCE.items()):
        shown = ", ".join(
            f"{key}: {value}"
            for key, value in (
                ("category", logsource.category),
                ("product", logsource.product),
                ("service", logsource.service),
            )
            if value
        )
        raise DetectionError(
            f"logsource ({shown or 'none'}) is not Kubernetes audit logs "
            "(product: kubernetes, service: audit)"
        )
    return ", ".join(f"{k}: {v}" for k, v in stated.items())
