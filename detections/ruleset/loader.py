"""Load detection rules from TOML files and folders, keeping every rule that can run.

A folder may be a whole checkout of Elastic's detection-rules: most of its rules are KQL or EQL,
or aggregate with STATS. Each rule that cannot run becomes a :class:`RuleProblem` naming the file
and the reason (with a line and column inside the query where there is one); it never stops the
rules that can.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from auditstream.detections.errors import DetectionError, RuleLoadError
from auditstream.detections.ruleset.cases import parse_cases
from auditstream.detections.ruleset.languages import LoadedRule, compile_rule

BUILTIN_RULES = Path(__file__).parent.parent / "rules"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    path: str
    rule_name: str | None
    reason: str

    def __str__(self) -> str:
        name = f" ({self.rule_name})" if self.rule_name else ""
        return f"{self.path}{name}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[LoadedRule, ...]
    problems: tuple[RuleProblem, ...]

    def by_id(self, rule_id: str) -> LoadedRule | None:
        return next((r for r in self.rules if r.meta.rule_id == rule_id), None)


def load_rules(paths: Sequence[Path] = (), *, builtin: bool = True) -> RuleSet:
    """Load the shipped rules (unless ``builtin`` is false) and every rule under ``paths``."""
    rules: list[LoadedRule] = []
    problems: list[RuleProblem] = []
    seen: dict[str, str] = {}
    roots = ([BUILTIN_RULES] if builtin else []) + list(paths)
    for file in _rule_files(roots, problems):
        try:
            rule = load_rule_file(file)
        except RuleLoadError as err:
            problems.append(RuleProblem(str(file), _rule_name(file), err.reason))
            continue
        if rule.meta.rule_id in seen:
            reason = f"rule_id {rule.meta.rule_id} is already loaded from {seen[rule.meta.rule_id]}"
            problems.append(RuleProblem(str(file), rule.meta.name, reason))
            continue
        seen[rule.meta.rule_id] = str(file)
        rules.append(rule)
    return RuleSet(tuple(rules), tuple(problems))


def _rule_files(roots: Iterable[Path], problems: list[RuleProblem]) -> Iterator[Path]:
    for root in roots:
        if root.is_dir():
            yield from sorted(root.rglob("*.toml"))
        elif root.is_file():
            yield root
        else:
            problems.append(RuleProblem(str(root), None, "no such file or folder"))


def load_rule_file(path: Path) -> LoadedRule:
    """Load one rule file in any language; raises :class:`RuleLoadError` with the reason.

    Whatever goes wrong inside a language's compiler is that rule's problem, reported with the
    file, never an exception that stops the other rules (a defect included).
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise RuleLoadError(str(path), f"cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise RuleLoadError(str(path), f"not valid TOML: {err}") from err
    table = document.get("rule")
    if not isinstance(table, Mapping):
        raise RuleLoadError(str(path), "not a rule file (no [rule] table)")
    try:
        return compile_rule(table, str(path), parse_cases(document))
    except DetectionError as err:
        raise RuleLoadError(str(path), str(err)) from err
    except Exception as err:  # a compiler defect met by this file: report it, load the rest
        raise RuleLoadError(str(path), f"internal error: {type(err).__name__}: {err}") from err


def _rule_name(path: Path) -> str | None:
    """Best effort: the rule's name for the problem report, even when the rest fails."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = table.get("name") if isinstance(table, Mapping) else None
    return name if isinstance(name, str) else None
