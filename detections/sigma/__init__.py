"""Sigma rules (``logsource: product: kubernetes, service: audit``), parsed and validated by
pySigma and run on the audit event itself with Sigma's own matching semantics."""

from auditstream.detections.sigma.loader import SigmaLoadResult, load_sigma_text
from auditstream.detections.sigma.rule import SigmaRule

__all__ = ["SigmaLoadResult", "SigmaRule", "load_sigma_text"]
