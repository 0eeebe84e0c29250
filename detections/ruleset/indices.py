"""Which rules read Kubernetes audit logs at all: decided from their index patterns, at load."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from auditstream.detections.errors import DetectionError
from auditstream.detections.ruleset.meta import RuleMeta

AUDIT_INDEX: Final = "logs-kubernetes.audit_logs-default"
"""The data stream Elastic Agent's Kubernetes audit integration writes (namespace default)."""


def index_pattern(pattern: str) -> re.Pattern[str]:
    """An Elasticsearch index pattern (rule text, not event data): ``*`` is the only wildcard;
    a ``cluster:`` prefix (cross-cluster search) is dropped."""
    index = pattern.split(":", 1)[-1]
    return re.compile(".*".join(re.escape(part) for part in index.split("*")), re.DOTALL)


def reads_audit_logs(patterns: Iterable[str]) -> bool:
    """True when one of the patterns covers the audit data stream (exclusions ``-x`` ignored:
    a rule that names the data stream and excludes it reads nothing, and says so itself)."""
    return any(
        index_pattern(pattern.strip()).fullmatch(AUDIT_INDEX)
        for group in patterns
        for pattern in group.split(",")
        if pattern.strip() and not pattern.strip().startswith("-")
    )


def require_audit_index(meta: RuleMeta) -> None:
    """A rule whose index patterns do not cover the audit data stream is reported, not run:
    Elastic would never have shown it an audit event."""
    if not reads_audit_logs(meta.index):
        shown = ", ".join(meta.index) or "none"
        raise DetectionError(
            f"index patterns ({shown}) do not cover Kubernetes audit logs ({AUDIT_INDEX})"
        )
