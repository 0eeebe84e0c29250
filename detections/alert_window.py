"""Suppress repeats of an alert within a bounded window.

One ``kubectl exec`` produces up to three audit events (RequestReceived, ResponseStarted,
ResponseComplete) with one auditID, so every rule would fire up to three times. The alert id is
deterministic (rule id + auditID), so remembering recent ids is enough to alert once. Memory is
bounded: at most ``capacity`` ids (about 240 bytes each once it has turned over), oldest forgotten
first. Across replicas the window is not shared; a restarted replica reads the alert topic's
recent ids back into it (:mod:`auditstream.stream.kafka.alert_log`).

In exactly-once mode a batch's alerts may still be aborted with its transaction: the ids it
recorded are *staged* (:meth:`stage`) and leave the window if the batch is aborted
(:meth:`discard_staged`), so that the batch, run again, alerts again, while ids of batches
already committed stay.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentAlerts:
    """An LRU set of alert ids; not thread-safe (one per processing loop)."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._staged: list[str] | None = None

    def seen(self, alert_id: str) -> bool:
        """True when the id is within the window (it then moves to the newest place); the id is
        not recorded: an alert is recorded once it is on its way (:meth:`record`), so that one
        that never left (its message dead-lettered) is not taken for a repeat later."""
        if alert_id in self._ids:
            self._ids.move_to_end(alert_id)
            return True
        return False

    def record(self, alert_id: str) -> None:
        """Remember an id whose alert is on its way; the oldest id goes beyond ``capacity``."""
        if self._staged is not None and alert_id not in self._ids:
            self._staged.append(alert_id)
        self._ids[alert_id] = None
        self._ids.move_to_end(alert_id)
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def stage(self) -> None:
        """From now on, remember which new ids are recorded, until :meth:`keep_staged` or
        :meth:`discard_staged` (one batch's transaction)."""
        self._staged = []

    def keep_staged(self) -> None:
        """The batch committed: its ids stay like any other."""
        self._staged = None

    def discard_staged(self) -> None:
        """The batch was aborted: the ids it recorded (and only those) leave the window."""
        for alert_id in self._staged or ():
            self._ids.pop(alert_id, None)
        self._staged = None

    def first_sighting(self, alert_id: str) -> bool:
        """True the first time an id is seen within the window, recording it at once: for
        callers that hand the alert on in the same step (:meth:`seen` and :meth:`record`
        apart otherwise)."""
        if self.seen(alert_id):
            return False
        self.record(alert_id)
        return True

    def clear(self) -> None:
        """Forget every id: repeats after this are produced again."""
        self._ids.clear()

    def __len__(self) -> int:
        return len(self._ids)
