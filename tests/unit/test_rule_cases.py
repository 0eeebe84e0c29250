"""Every example case shipped in every rule file, through the production detector."""

from __future__ import annotations

import pytest

from auditstream.detections.engine import Detector
from auditstream.detections.ruleset.case_runner import check_case
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.languages import LoadedRule
from auditstream.detections.ruleset.loader import BUILTIN_RULES, load_rules

RULES = load_rules()
DETECTOR = Detector(RULES.rules)
CASES = [(rule, case) for rule in RULES.rules for case in rule.cases]


def test_shipped_rules_load_without_problems() -> None:
    assert RULES.problems == ()
    assert len(RULES.rules) == len(list(BUILTIN_RULES.glob("*.toml")))


def test_every_rule_ships_positive_and_negative_cases() -> None:
    for rule in RULES.rules:
        outcomes = {case.expect for case in rule.cases}
        assert outcomes == {True, False}, rule.meta.name


@pytest.mark.parametrize(
    ("rule", "case"), CASES, ids=[f"{r.meta.name[:30]}: {c.note[:50]}" for r, c in CASES]
)
def test_rule_case(rule: LoadedRule, case: RuleCase) -> None:
    assert check_case(DETECTOR, rule, case) is None
