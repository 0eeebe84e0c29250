"""Sigma YAML files -> compiled rules, with pySigma as the parser and validator.

A file may hold several YAML documents (rules, ``action: global`` templates, filters, and
correlation rules). pySigma parses and validates every document, merges global templates and
filters into the rules they apply to; this module compiles the rules that read Kubernetes
audit logs and reports each other document with the reason it does not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule as PySigmaRule

from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.sigma.compiler import compile_detection
from auditstream.detections.sigma.meta import sigma_meta
from auditstream.detections.sigma.rule import SigmaRule

AUDIT_LOGSOURCE: Mapping[str, str] = {"product": "kubernetes", "service": "audit"}
"""The logsource of the rules auditstream runs (SigmaHQ's ``rules/application/kubernetes``)."""


@dataclass(frozen=True, slots=True)
class SigmaProblem:
    rule_name: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class SigmaLoadResult:
    rules: tuple[SigmaRule, ...]
    problems: tuple[SigmaProblem, ...]


def load_sigma_text(text: str, path: str) -> SigmaLoadResult:
    """Every rule of one Sigma file that can run, and a problem for each document that cannot
    (pySigma's validation errors included); never raises for the file's content."""
    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except (SigmaError, ValueError, TypeError) as err:  # not YAML, or not a Sigma document
        return SigmaLoadResult((), (SigmaProblem(None, f"not a Sigma file: {err}"),))
    rules: list[SigmaRule] = []
    problems: list[SigmaProblem] = []
    for item in collection.rules:
        title = getattr(item, "title", None) or None
        if isinstance(item, SigmaCorrelationRule):
            problems.append(SigmaProblem(title, _correlation_reason(item)))
            continue
        if item.errors:
            reasons = "; ".join(str(error) for error in item.errors)
            problems.append(SigmaProblem(title, f"invalid Sigma rule: {reasons}"))
            continue
        try:
            rules.append(compile_sigma_rule(item, path))
        except DetectionError as err:
            problems.append(SigmaProblem(title, str(err)))
        except SigmaError as err:
            problems.append(SigmaProblem(title, f"invalid Sigma rule: {err}"))
    return SigmaLoadResult(tuple(rules), tuple(problems))


def compile_sigma_rule(rule: PySigmaRule, path: str, cases: tuple[RuleCase, ...] = ()) -> SigmaRule:
    """Compile one parsed rule; raises DetectionError naming what cannot run."""
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
    shown_source = ", ".join(f"{k}: {v}" for k, v in stated.items())
    return SigmaRule(sigma_meta(rule), compile_detection(rule), path, shown_source, cases)


def _correlation_reason(rule: SigmaCorrelationRule) -> str:
    kind = rule.type.name.lower() if rule.type is not None else "unknown"
    return (
        f"a Sigma correlation rule (type {kind}) needs memory across events, which auditstream "
        "does not run yet"
    )
