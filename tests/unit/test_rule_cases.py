"""Every example case shipped in every rule file, through the production detector."""

from __future__ import annotations

import pytest

from auditstream.detections.engine import Detector
from auditstream.detections.ruleset.cases import RuleCase
from auditstream.detections.ruleset.loader import LoadedRule, load_rules
from auditstream.stream.cli.rules import run_case

RULES = load_rules()
DETECTOR = Detector(RULES.rules)
CASES = [(rule, case) for rule in RULES.rules for case in rule.cases]


def test_shipped_rules_load_without_problems() -> None:
    assert RULES.problems == ()
    assert len(RULES.rules) == 4


def test_every_rule_ships_positive_and_negative_cases() -> None:
    for rule in RULES.rules:
        outcomes = {case.expect for case in rule.cases}
        assert outcomes == {True, False}, rule.meta.name


@pytest.mark.parametrize(
    ("rule", "case"), CASES, ids=[f"{r.meta.name[:30]}: {c.note[:50]}" for r, c in CASES]
)
def test_rule_case(rule: LoadedRule, case: RuleCase) -> None:
    assert run_case(DETECTOR, rule, case) is None
