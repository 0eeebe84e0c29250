"""The one signature every native rule predicate has, and what it returns when it fires."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from auditstream.detections.exec.request import ExecRequest
from auditstream.detections.exec.shell_words import SimpleCommand


@dataclass(frozen=True, slots=True)
class NativeHit:
    """Why a native rule fired: the indicator that matched and the normalised simple command it
    matched in (``SimpleCommand.normalised``); ``detail`` carries the connection target or URL,
    the original text and the route (kubelet proxy) for the analyst."""

    indicator: str
    simple_command: str
    detail: str | None = None


NativePredicate = Callable[[ExecRequest, tuple[SimpleCommand, ...]], NativeHit | None]
"""A pure function of the decoded request and its normalised commands; ``None`` means no alert."""
