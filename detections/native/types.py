"""The one signature every native rule predicate has, and what it returns when it fires."""

from __future__ import annotations

from collections.abc import Callable

from auditstream.detections.exec.request import ExecRequest
from auditstream.detections.exec.shell_words import SimpleCommand
from auditstream.detections.rule_hit import Explanation

NativePredicate = Callable[[ExecRequest, tuple[SimpleCommand, ...]], Explanation | None]
"""A pure function of the decoded request and its normalised commands; ``None`` means no alert."""
