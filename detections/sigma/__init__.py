"""Sigma rules (``logsource: product: kubernetes, service: audit``), parsed and validated by
pySigma and run on the audit event itself with Sigma's own matching semantics.

The loader (and pySigma with it) is imported on first use: running rules of other languages
must not pay pySigma's import time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auditstream.detections.sigma.rule import SigmaRule

if TYPE_CHECKING:
    from auditstream.detections.sigma.loader import SigmaLoadResult, load_sigma_text

__all__ = ["SigmaLoadResult", "SigmaRule", "load_sigma_text"]


def __getattr__(name: str) -> Any:
    if name in ("SigmaLoadResult", "load_sigma_text"):
        from auditstream.detections.sigma import loader  # noqa: PLC0415

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
