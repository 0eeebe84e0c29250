"""Where a managed cluster's audit event came from: the coordinates of its cloud envelope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Envelope:
    """The coordinates an alert keeps of the record that carried its event, so that an analyst
    finds the cluster and the log behind it; ``None`` where the envelope does not say."""

    provider: str
    """``aks`` (Azure Monitor diagnostic record), ``eks`` (CloudWatch Logs), ``gke`` (Cloud
    Audit Logs)."""
    cluster: str | None = None
    resource_id: str | None = None
    """AKS: the cluster's Azure resource id; EKS: the AWS account; GKE: the project."""
    log_group: str | None = None
    """EKS: the CloudWatch log group; GKE: the log name; AKS: the diagnostic category."""
    log_stream: str | None = None
    """EKS: the CloudWatch log stream; AKS: the API server pod that wrote the line."""

    def to_record(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "cluster": self.cluster,
            "resource_id": self.resource_id,
            "log_group": self.log_group,
            "log_stream": self.log_stream,
        }
