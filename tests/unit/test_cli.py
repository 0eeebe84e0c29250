"""The command line as a user meets it: scan, rule loading problems, rules list/show/test."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from auditstream.detections.ruleset.loader import BUILTIN_RULES, load_rules
from auditstream.stream.cli.main import EXIT_OK, EXIT_RULES, main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "audit-sample.jsonl"

STATS_RULE = """
[rule]
rule_id = "00000000-0000-4000-8000-00000000000a"
name = "Aggregating rule"
description = "x"
severity = "low"
risk_score = 1
language = "esql"
type = "esql"
query = '''
FROM logs-kubernetes.audit_logs-*
| WHERE kubernetes.audit.verb == "create"
| INLINESTATS n = COUNT(*) BY kubernetes.audit.user.username
'''
"""

UNKNOWN_FUNCTION_RULE = STATS_RULE.replace("00a", "00b").replace(
    "| INLINESTATS n = COUNT(*) BY kubernetes.audit.user.username",
    "| EVAL x = FOO(kubernetes.audit.verb)",
)
LUCENE_RULE = STATS_RULE.replace("00a", "00c").replace('language = "esql"', 'language = "lucene"')
GOOD_RULE = (
    STATS_RULE.replace("00a", "00d")
    .replace(
        "| INLINESTATS n = COUNT(*) BY kubernetes.audit.user.username",
        '| WHERE kubernetes.audit.objectRef.subresource == "exec"',
    )
    .replace("Aggregating rule", "Every exec")
)


@pytest.fixture
def rule_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "stats.toml").write_text(STATS_RULE)
    (folder / "unknown_function.toml").write_text(UNKNOWN_FUNCTION_RULE)
    (folder / "lucene.toml").write_text(LUCENE_RULE)
    (folder / "good.toml").write_text(GOOD_RULE)
    (folder / "notes.toml").write_text("[metadata]\nowner = 'x'\n")
    return folder


def scan(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, list[dict[str, object]], str]:
    status = main(["scan", *args])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines()], err


def test_rule_folder_loads_what_can_run_and_reports_the_rest(rule_folder: Path) -> None:
    rules = load_rules([rule_folder])
    names = {rule.meta.name for rule in rules.rules}
    shipped = len(list(BUILTIN_RULES.glob("*.toml")))
    assert "Every exec" in names and len(rules.rules) == shipped + 1  # + the good one
    reasons = {Path(p.path).name: p.reason for p in rules.problems}
    assert reasons["stats.toml"].startswith("INLINESTATS is not supported")
    assert "at line 3, column 3" in reasons["stats.toml"]
    assert reasons["unknown_function.toml"] == "unknown function FOO at line 3, column 12"
    assert "language lucene is not supported" in reasons["lucene.toml"]
    assert "not a rule file" in reasons["notes.toml"]


def test_scan_prints_alerts_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    status, alerts, err = scan(capsys, str(SAMPLE))
    assert status == EXIT_OK
    assert alerts, "the sample holds malicious execs"
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids)), "one alert per (rule, auditID)"
    first = alerts[0]
    assert first["source"] == {"kind": "file", "topic": None, "partition": None, "offset": None,
                               "file": str(SAMPLE), "line": first["source"]["line"],
                               "envelope": None}  # fmt: skip
    assert (
        "Esql.executed_command"
        in next(a for a in alerts if a["rule"]["language"] == "esql")["fields"]
    )
    assert f"{len(alerts)} alerts" in err
    assert "malformed examples/audit-sample.jsonl:" in err or f"malformed {SAMPLE}:" in err


def test_scan_writes_dead_letters_and_reads_gzip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    packed = tmp_path / "audit.jsonl.gz"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    dead = tmp_path / "dead.jsonl"
    status, gz_alerts, _ = scan(capsys, "--dead-letter", str(dead), str(packed))
    _, plain_alerts, _ = scan(capsys, str(SAMPLE))
    assert status == EXIT_OK
    assert [a["alert_id"] for a in gz_alerts] == [a["alert_id"] for a in plain_alerts]
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert {d["reason"] for d in letters} == {"not_json", "unknown_shape"}
    assert all(d["file"] == str(packed) and d["line"] > 0 and d["value"] for d in letters)


def test_scan_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(SAMPLE.read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    status, alerts, _ = scan(capsys, "-")
    assert status == EXIT_OK and alerts


def test_a_broken_rule_file_named_on_the_command_line_fails_the_run_but_others_run(
    capsys: pytest.CaptureFixture[str], rule_folder: Path
) -> None:
    status, alerts, err = scan(capsys, "--rules", str(rule_folder / "stats.toml"), str(SAMPLE))
    assert status == EXIT_RULES
    assert alerts, "the rules that loaded still ran"
    assert "stats.toml" in err and "INLINESTATS is not supported" in err


def test_problems_in_a_folder_only_warn(
    capsys: pytest.CaptureFixture[str], rule_folder: Path
) -> None:
    status, alerts, err = scan(capsys, "--rules", str(rule_folder), str(SAMPLE))
    assert status == EXIT_OK
    assert any(a["rule"]["name"] == "Every exec" for a in alerts)
    assert err.count("rule not loaded") == 4


def test_missing_input_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["scan", "/nonexistent/audit.jsonl"])
    assert status == 2
    assert "no such file" in capsys.readouterr().err


def test_rules_list_show_and_test(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == EXIT_OK
    listing = capsys.readouterr().out
    assert "f1a2b3c4-d5e6-4789-a012-3456789abc01  high" in listing
    assert "4 rules loaded, 0 not loaded" in listing
    assert main(["rules", "show", "f1a2b3c4-d5e6-4789-a012-3456789abc01"]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "7 leading stages shared" in shown or "6 leading stages shared" in shown
    assert "GROK" in shown and "Esql.executed_command" in shown
    assert main(["rules", "test"]) == EXIT_OK
    assert capsys.readouterr().out.strip().endswith("passed, 0 failed")


def test_rules_test_fails_on_a_wrong_case(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = (BUILTIN_RULES / "kubernetes_pod_exec_curl_or_wget_to_https.toml").read_text()
    broken = source.replace('note = "routine: cat a config file"', 'note = "routine"', 1)
    broken = broken.replace("expect = false", "expect = true", 1)
    (tmp_path / "copy.toml").write_text(broken.replace("c9d4e8f1-", "c9d4e8f2-"))
    status = main(["rules", "test", "--no-builtin-rules", "--rules", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL" in out and "1 failed" in out


def _secret_read(user: str, minute: float, n: int) -> str:
    stamp = f"2026-01-01T00:{int(minute):02d}:{int(minute % 1 * 60):02d}.000000Z"
    return json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": f"c0ffee00-0000-4000-8000-{n:012d}", "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/prod/secrets/db", "verb": "get",
        "user": {"username": user}, "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db"},
        "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
    }) + "\n"  # fmt: skip


def test_scan_runs_new_terms_with_history_read_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A new-terms rule (3 minutes of history, from the service tests) over a scan: without
    history it learns silently; with ``--history`` a new user alerts at once, a known one not,
    and nothing alerts from the history file itself."""
    rules = Path(__file__).parents[1] / "integration" / "service" / "stateful_rules"
    history = tmp_path / "history.jsonl"
    history.write_text("".join(_secret_read(f"u{i}", i / 10, i) for i in range(30)))
    live = tmp_path / "live.jsonl"
    live.write_text(_secret_read("u25", 4, 100) + _secret_read("newcomer", 4, 101))
    options = ("--no-builtin-rules", "--rules", str(rules))
    status, alerts, _ = scan(capsys, *options, str(live))
    assert status == 0 and alerts == []  # no history: every user is being learnt
    status, alerts, _ = scan(capsys, *options, "--history", str(history), str(live))
    assert status == 0
    assert [a["event"]["user"]["username"] for a in alerts] == ["newcomer"]
    assert alerts[0]["fields"]["new_terms"] == ["newcomer"]
