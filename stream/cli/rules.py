"""``auditstream rules list|show|test``; the case format is documented in
auditstream.detections.ruleset.cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from auditstream.detections.engine import Detector
from auditstream.detections.errors import RuleLoadError
from auditstream.detections.esql.rule import EsqlRule
from auditstream.detections.native import NativeRule
from auditstream.detections.ruleset.case_runner import check_case
from auditstream.detections.ruleset.languages import LoadedRule, language_of
from auditstream.detections.ruleset.loader import RuleSet, load_case_files
from auditstream.detections.sigma import SigmaRule
from auditstream.detections.stateful.rule import StatefulRule


def run_rules_command(
    action: str, rules: RuleSet, selector: str | None, *, case_files: Sequence[Path] = ()
) -> int:
    if action == "list":
        return _list(rules)
    if action == "show":
        return _show(rules, selector or "")
    if action == "test":
        return _test(rules, case_files)
    raise ValueError(f"unknown rules action {action!r}")


def _list(rules: RuleSet) -> int:
    for rule in rules.rules:
        kind = language_of(rule).name
        if isinstance(rule, StatefulRule):
            kind = f"{kind}/{rule.kind}"
        meta = rule.meta
        print(f"{meta.rule_id}  {meta.severity:<8} {meta.risk_score:>3}  {kind:<6}  {meta.name}")
    skipped = sum(problem.skipped for problem in rules.problems)
    not_loaded = len(rules.problems) - skipped
    print(f"{len(rules.rules)} rules loaded, {not_loaded} not loaded, {skipped} files skipped")
    return 0


def _show(rules: RuleSet, selector: str) -> int:
    matches = [
        r
        for r in rules.rules
        if r.meta.rule_id == selector or selector.lower() in r.meta.name.lower()
    ]
    if len(matches) != 1:
        print(f"auditstream: {len(matches)} rules match {selector!r}; give a rule id")
        return 2
    rule = matches[0]
    meta = rule.meta
    print(
        f"{meta.name}\n  id: {meta.rule_id}\n  severity: {meta.severity} (risk {meta.risk_score})"
    )
    print(f"  file: {rule.path}")
    if isinstance(rule, EsqlRule):
        shared = _shared_stage_count(rule, rules.rules)
        print(f"  stages ({shared} leading stages shared with other loaded rules):")
        print(f"    FROM {', '.join(rule.query.source.sources)}")
        for number, (command, _) in enumerate(rule.query.stages, start=2):
            print(f"    {number}. {type(command).__name__.upper()} {_describe(command)}")
        print(f"  alert fields: {', '.join(rule.query.output_columns) or '(none)'}")
    elif isinstance(rule, SigmaRule):
        print(f"  language: sigma ({rule.logsource}); status: {meta.status or '(none)'}")
        print(f"  fields read: {', '.join(rule.reads)}")
        required = rule.required_values
        print(f"  indexed by: {', '.join(sorted(required)) or '(evaluated on every event)'}")
        for note in meta.false_positives:
            print(f"  false positive: {note}")
    elif isinstance(rule, StatefulRule):
        print(f"  language: {rule.language}; stateful: {rule.kind}; index: {', '.join(meta.index)}")
        print(f"  group key: {', '.join(rule.key_names) or '(none: one group)'}")
        for name, value in rule.details.items():
            print(f"  {name}: {value}")
        if rule.history_ms:
            print(f"  history needed before alerting: {rule.history_ms // 1000} s of event time")
    elif isinstance(rule, NativeRule):
        print(f"  native predicate: {rule.predicate_name}")
        print(f"  Elastic twin for parity: {rule.parity_rule_id or '(none)'}")
    else:
        print(f"  language: {language_of(rule).name}; index: {', '.join(meta.index)}")
        print(f"  query: {rule.query.query}")
        required = rule.required_values
        print(f"  indexed by: {', '.join(sorted(required)) or '(evaluated on every event)'}")
    return 0


def _describe(command: object) -> str:
    text = repr(command)
    return text if len(text) <= 160 else text[:157] + "..."


def _shared_stage_count(rule: EsqlRule, others: Sequence[LoadedRule]) -> int:
    best = 0
    mine = [command for command, _ in rule.query.stages]
    for other in others:
        if other is rule or not isinstance(other, EsqlRule):
            continue
        if other.query.source != rule.query.source:
            continue
        theirs = [command for command, _ in other.query.stages]
        common = 0
        for a, b in zip(mine, theirs, strict=False):
            if a != b:
                break
            common += 1
        best = max(best, common)
    return best


def _test(rules: RuleSet, case_files: Sequence[Path]) -> int:
    try:
        extra = load_case_files(case_files)
    except RuleLoadError as err:
        print(f"auditstream: {err}")
        return 2
    detector = Detector(rules.rules)
    failures = passed = 0
    for rule_id in sorted(set(extra) - {rule.meta.rule_id for rule in rules.rules}):
        failures += len(extra[rule_id])
        print(f"FAIL {len(extra[rule_id])} cases name rule {rule_id}, which is not loaded")
    for rule in rules.rules:
        for case in (*rule.cases, *extra.get(rule.meta.rule_id, ())):
            problem = check_case(detector, rule, case)
            if problem is None:
                passed += 1
                continue
            failures += 1
            print(f"FAIL {rule.meta.name}: {case.note or case.uri[:80]}: {problem}")
    print(f"{passed} passed, {failures} failed")
    return 1 if failures else 0
