"""The rule index never drops a rule that could match, and keeps load order."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from auditstream.detections.ruleset.rule_index import INDEX_FIELDS, RuleIndex
from auditstream.detections.values import Scalar

VALUES = ["get", "list", "create", "secrets", "pods", "exec", "", "true"]
FIELDS = [*INDEX_FIELDS, "user.name"]


@dataclass(frozen=True)
class FakeRule:
    name: str
    required: dict[str, frozenset[str]]

    def could_match(self, doc: dict[str, tuple[Scalar, ...]]) -> bool:
        """What the index may assume: every requirement needs an exactly equal string."""
        return all(
            any(not isinstance(v, str) or v in values for v in doc.get(f, ()))
            for f, values in self.required.items()
        )


requirements = st.dictionaries(
    st.sampled_from(FIELDS), st.frozensets(st.sampled_from(VALUES), min_size=1), max_size=3
)
documents = st.dictionaries(
    st.sampled_from(FIELDS),
    st.lists(st.one_of(st.sampled_from(VALUES), st.booleans(), st.integers()), max_size=3).map(
        tuple
    ),
)


@given(st.lists(requirements, max_size=12), documents)
def test_every_rule_that_could_match_is_a_candidate_in_load_order(
    required: list[dict[str, frozenset[str]]], doc: dict[str, tuple[Scalar, ...]]
) -> None:
    rules = [FakeRule(f"r{i}", r) for i, r in enumerate(required)]
    index = RuleIndex(rules, lambda rule: rule.required)
    candidates = index.candidates(lambda field: doc.get(field, ()))
    assert [r for r in rules if r.could_match(doc)] == [r for r in candidates if r.could_match(doc)]
    assert candidates == [r for r in rules if r in candidates]  # load order


def test_a_routine_event_evaluates_only_the_rules_of_its_values() -> None:
    secrets = FakeRule("secrets", {"kubernetes.audit.objectRef.resource": frozenset({"secrets"})})
    execs = FakeRule("exec", {"kubernetes.audit.objectRef.subresource": frozenset({"exec"})})
    anything = FakeRule("any", {"user.name": frozenset({"x"})})  # not an index field
    index = RuleIndex([secrets, execs, anything], lambda rule: rule.required)
    assert index.unindexed == (anything,)
    doc = {"kubernetes.audit.objectRef.resource": ("configmaps",)}
    assert index.candidates(lambda f: doc.get(f, ())) == [anything]
    doc = {"kubernetes.audit.objectRef.resource": ("secrets",)}
    assert index.candidates(lambda f: doc.get(f, ())) == [secrets, anything]


def test_a_non_string_value_takes_every_rule_of_its_field() -> None:
    """A boolean is indexed as the keyword "true": the index does not guess, it widens."""
    rule = FakeRule("t", {"kubernetes.audit.verb": frozenset({"true"})})
    index = RuleIndex([rule], lambda r: r.required)
    assert index.candidates(lambda f: (True,) if f == "kubernetes.audit.verb" else ()) == [rule]
