"""The README's memory figure for the dedup window is measured, not guessed (issue #16, defect 7).

tracemalloc counts what a full :class:`RecentAlerts` of 100,000 alert ids holds once it has
turned over (ids evicted as new ones arrive, the steady state of a running replica), the id
strings included: the window is their only owner once the alert is produced. On CPython 3.11
that is about 236 bytes per id (176 while the window first fills: the dict's table grows one
size up once deletions start).
"""

from __future__ import annotations

import gc
import re
import tracemalloc
from pathlib import Path

from auditstream.detections.alert_window import RecentAlerts

IDS = 100_000
README = Path(__file__).resolve().parents[2] / "README.md"


def bytes_per_id() -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        window = RecentAlerts(IDS)
        for index in range(2 * IDS):  # fill, then turn over once
            # the size of a real alert id (a UUID's 36 ASCII characters), without SHA-1 per id
            window.first_sighting(f"{index:036d}")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(window) == IDS
    return held / IDS


def test_the_readme_states_the_measured_cost_per_id() -> None:
    stated = re.search(r"`window` ids \(about (\d+) bytes each", README.read_text())
    assert stated is not None, "the README no longer states the window's cost per id"
    measured = bytes_per_id()
    print(f"\nRecentAlerts: {measured:.1f} bytes per id at {IDS} ids")
    assert abs(measured - int(stated.group(1))) <= 0.15 * measured, (measured, stated.group(1))
