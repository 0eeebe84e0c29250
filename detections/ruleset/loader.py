"""Load detection rules from files and folders, keeping every rule that can run.

Rule files are TOML (detection-rules' format, and auditstream's own) or Sigma YAML (``.yml``,
``.yaml``; one file may hold several rules). A folder may be a whole checkout of Elastic's
detection-rules or of SigmaHQ's rules: most of them are for other log sources, or aggregate with
STATS. Each rule that cannot run becomes a :class:`RuleProblem` naming the file
and the reason (with a line and column inside the query where there is one); it never stops the
rules that can.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from auditstream.detections.errors import DetectionError, RuleLoadError
from auditstream.detections.ruleset.cases import RuleCase, parse_case_file, parse_cases
from auditstream.detections.ruleset.languages import LoadedRule, compile_rule

if TYPE_CHECKING:
    from auditstream.detections.sigma.loader import SigmaLoadResult

BUILTIN_RULES = Path(__file__).parent.parent / "rules"


@dataclass(frozen=True, slots=True)
class RuleProblem:
    path: str
    rule_name: str | None
    reason: str
    skipped: bool = False
    """A file in a rules folder that is not a rule file at all (a README, an image)."""

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
    files = list(_rule_files(roots, problems))
    sigma = _sigma_files(files)  # all parsed first: a correlation may name another file's rule
    for file in files:
        for rule in _file_rules(file, problems, sigma):
            earlier = seen.get(rule.meta.rule_id)
            if earlier is not None:
                reason = f"rule_id {rule.meta.rule_id} is already loaded from {earlier}"
                problems.append(RuleProblem(str(file), rule.meta.name, reason))
                continue
            seen[rule.meta.rule_id] = str(file)
            rules.append(rule)
    return RuleSet(tuple(rules), tuple(problems))


TOML_SUFFIXES: Final = (".toml",)
SIGMA_SUFFIXES: Final = (".yml", ".yaml")
_KNOWN: Final = ", ".join(TOML_SUFFIXES + SIGMA_SUFFIXES)


def _rule_files(roots: Iterable[Path], problems: list[RuleProblem]) -> Iterator[Path]:
    """Rule files under each root, in name order. Inside a folder every other file is reported
    as skipped; hidden files and folders (``.git``, ``.github``) are passed over unreported."""
    for root in roots:
        if root.is_dir():
            for file in sorted(root.rglob("*")):
                relative = file.relative_to(root).parts
                if any(part.startswith(".") for part in relative) or not file.is_file():
                    continue
                if file.suffix.lower() in TOML_SUFFIXES + SIGMA_SUFFIXES:
                    yield file
                else:
                    kind = file.suffix or "no extension"
                    reason = f"not a rule file ({kind}): rule files are {_KNOWN}"
                    problems.append(RuleProblem(str(file), None, reason, skipped=True))
        elif root.is_file():
            yield root
        else:
            problems.append(RuleProblem(str(root), None, "no such file or folder"))


def _sigma_files(files: Sequence[Path]) -> dict[Path, SigmaLoadResult]:
    """Every Sigma file compiled, references between files resolved (pySigma parses each)."""
    paths = list(dict.fromkeys(file for file in files if file.suffix.lower() in SIGMA_SUFFIXES))
    if not paths:
        return {}
    # pySigma (and what it imports) costs a fifth of a second: only when there is Sigma to read.
    from auditstream.detections.sigma.loader import (  # noqa: PLC0415
        SigmaFile,
        SigmaProblem,
        compile_sigma_files,
        parse_sigma_text,
    )

    parsed: list[SigmaFile] = []
    for file in paths:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            parsed.append(SigmaFile(str(file), problem=SigmaProblem(None, f"cannot read: {err}")))
            continue
        parsed.append(parse_sigma_text(text, str(file)))
    return dict(zip(paths, compile_sigma_files(parsed), strict=True))


def _file_rules(
    file: Path, problems: list[RuleProblem], sigma: Mapping[Path, SigmaLoadResult]
) -> list[LoadedRule]:
    """The rules of one file; what cannot load goes to ``problems``."""
    if file.suffix.lower() in SIGMA_SUFFIXES:
        loaded = sigma[file]
        problems.extend(RuleProblem(str(file), p.rule_name, p.reason) for p in loaded.problems)
        return list(loaded.rules)
    try:
        return [load_rule_file(file)]
    except RuleLoadError as err:
        problems.append(RuleProblem(str(file), _rule_name(file), err.reason))
        return []


def load_rule_file(path: Path) -> LoadedRule:
    """Load one TOML rule file in any language; raises :class:`RuleLoadError` with the reason.

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


def load_case_files(paths: Sequence[Path]) -> dict[str, tuple[RuleCase, ...]]:
    """The cases of every cases file, by rule id (see :func:`parse_case_file`); raises
    :class:`RuleLoadError` naming the file and the bad case."""
    by_rule: dict[str, tuple[RuleCase, ...]] = {}
    for path in paths:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
            cases = parse_case_file(document)
        except (OSError, UnicodeDecodeError) as err:
            raise RuleLoadError(str(path), f"cannot read: {err}") from err
        except tomllib.TOMLDecodeError as err:
            raise RuleLoadError(str(path), f"not valid TOML: {err}") from err
        except DetectionError as err:
            raise RuleLoadError(str(path), str(err)) from err
        for rule_id, more in cases.items():
            by_rule[rule_id] = by_rule.get(rule_id, ()) + more
    return by_rule
