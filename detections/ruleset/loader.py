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
from typing import Any

from auditstream.detections.errors import DetectionError
from auditstream.detections.esql.compiler import CompiledQuery, compile_query
from auditstream.detections.esql.parser import parse_query
from auditstream.detections.native import NativeRule, native_rule
from auditstream.detections.ruleset.cases import RuleCase, parse_cases
from auditstream.detections.ruleset.meta import RuleMeta

BUILTIN_RULES = Path(__file__).parent.parent / "rules"


@dataclass(frozen=True, slots=True)
class EsqlRule:
    """An Elastic ES|QL rule compiled into a stage chain."""

    meta: RuleMeta
    query_text: str
    query: CompiledQuery
    path: str
    cases: tuple[RuleCase, ...] = ()


LoadedRule = EsqlRule | NativeRule


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
        except DetectionError as err:
            problems.append(RuleProblem(str(file), _rule_name(file), str(err)))
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
    """Load one detection-rules TOML file; raises :class:`DetectionError` with the reason."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise DetectionError(f"cannot read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise DetectionError(f"not valid TOML: {err}") from err
    table = document.get("rule")
    if not isinstance(table, Mapping):
        raise DetectionError("not a rule file (no [rule] table)")
    return rule_from_table(table, str(path), parse_cases(document))


def rule_from_table(
    table: Mapping[str, Any], path: str, cases: tuple[RuleCase, ...] = ()
) -> LoadedRule:
    """Compile one ``[rule]`` table: ES|QL, or a native rule bound to its predicate."""
    language = str(table.get("language", "")).lower()
    if language == "python" or table.get("type") == "native":
        return native_rule(table, cases, path)
    if language != "esql":
        raise DetectionError(
            f"language {language or 'unknown'} is not supported (auditstream runs ES|QL rules)"
        )
    meta = RuleMeta.from_rule_table(table)
    query_text = table.get("query")
    if not isinstance(query_text, str):
        raise DetectionError("[rule] query is missing")
    query_text = query_text.strip("\n")
    compiled = compile_query(parse_query(query_text))
    return EsqlRule(meta, query_text, compiled, path, cases)


def _rule_name(path: Path) -> str | None:
    """Best effort: the rule's name for the problem report, even when the rest fails."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = table.get("name") if isinstance(table, Mapping) else None
    return name if isinstance(name, str) else None
