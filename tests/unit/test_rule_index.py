"""The rule index never drops a rule that could match, and keeps load order."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from auditstream.detections.ruleset.rule_index import INDEX_FIELDS, RuleIndex
from auditstream.detections.values import Scalar

VALUES = ["get", "list", "create", "secrets", "pods", "exec", "", "true"]
FIELDS = [*INDEX_FIELDS, "user.name", "kubernetes.audit.impersonatedUser.username"]


@dataclass(frozen=True)
class FakeRule:
    name: str
    required: dict[str, frozenset[str]]
    present: frozenset[str] = frozenset()

    def could_match(self, doc: dict[str, tuple[Scalar, ...]]) -> bool:
        """What the index may assume: every requirement needs an exactly equal string, every
        presence requirement some value."""
        return all(
            any(not isinstance(v, str) or v in values for v in doc.get(f, ()))
            for f, values in self.required.items()
        ) and all(doc.get(f) for f in self.present)


requirements = st.dictionaries(
    st.sampled_from(FIELDS), st.frozensets(st.sampled_from(VALUES), min_size=1), max_size=3
)
documents = st.dictionaries(
    st.sampled_from(FIELDS),
    st.lists(st.one_of(st.sampled_from(VALUES), st.booleans(), st.integers()), max_size=3).map(
        tuple
    ),
)


@given(
    st.lists(st.tuples(requirements, st.frozensets(st.sampled_from(FIELDS))), max_size=12),
    documents,
)
def test_every_rule_that_could_match_is_a_candidate_in_load_order(
    required: list[tuple[dict[str, frozenset[str]], frozenset[str]]],
    doc: dict[str, tuple[Scalar, ...]],
) -> None:
    rules = [FakeRule(f"r{i}", r, present) for i, (r, present) in enumerate(required)]
    index = RuleIndex(rules, lambda rule: rule.required, present=lambda rule: rule.present)
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


def test_a_rule_needing_a_missing_field_is_no_candidate() -> None:
    """An impersonation rule needs impersonatedUser: routine events never evaluate it."""
    field = "kubernetes.audit.impersonatedUser.username"
    rule = FakeRule("imp", {"kubernetes.audit.verb": frozenset({"get"})}, frozenset({field}))
    index = RuleIndex([rule], lambda r: r.required, present=lambda r: r.present)
    routine = {"kubernetes.audit.verb": ("get",)}
    assert index.candidates(lambda f: routine.get(f, ())) == []
    assert index.candidates(lambda f: {**routine, field: ("admin",)}.get(f, ())) == [rule]
    assert index.unindexed == ()


def test_a_non_string_value_takes_every_rule_of_its_field() -> None:
    """A boolean is indexed as the keyword "true": the index does not guess, it widens."""
    rule = FakeRule("t", {"kubernetes.audit.verb": frozenset({"true"})})
    index = RuleIndex([rule], lambda r: r.required)
    assert index.candidates(lambda f: (True,) if f == "kubernetes.audit.verb" else ()) == [rule]


def _counted_candidates(
    rules: list[FakeRule], doc: dict[str, tuple[Scalar, ...]], unknown: frozenset[str]
) -> list[FakeRule]:
    """The index's answer as it was first written (a count of met requirements per rule): the
    bit-set version must give exactly this, not only a superset of the rules that match."""
    out = []
    for rule in rules:
        required = {f: v for f, v in rule.required.items() if f in INDEX_FIELDS and v}
        met = all(
            field in unknown
            or any(not isinstance(x, str) or x in values for x in doc.get(field, ()))
            for field, values in required.items()
        )
        present = all(
            field in unknown or doc.get(field)
            for field in rule.present
            if field.startswith("kubernetes.audit.")
        )
        if met and present:
            out.append(rule)
    return out


@given(
    st.lists(st.tuples(requirements, st.frozensets(st.sampled_from(FIELDS))), max_size=70),
    documents,
    st.frozensets(st.sampled_from(FIELDS), max_size=2),
)
def test_candidates_are_exactly_the_rules_whose_every_requirement_is_met(
    required: list[tuple[dict[str, frozenset[str]], frozenset[str]]],
    doc: dict[str, tuple[Scalar, ...]],
    unknown: frozenset[str],
) -> None:
    # up to 70 rules: past one machine word of bits
    rules = [FakeRule(f"r{i}", r, present) for i, (r, present) in enumerate(required)]
    index = RuleIndex(rules, lambda rule: rule.required, present=lambda rule: rule.present)
    got = index.candidates(lambda field: doc.get(field, ()), unknown=unknown)
    assert got == _counted_candidates(rules, doc, unknown)
