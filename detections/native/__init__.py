"""Native (pure Python) detection rules over the decoded exec request: re-exports only."""

from __future__ import annotations

from .loader import NativeRule, load_native_rule, native_rule, prepare, run_case
from .registry import PREDICATES
from .remote_download import remote_download_https_hardened
from .reverse_shell import reverse_shell_hardened
from .types import NativeHit, NativePredicate

__all__ = [
    "PREDICATES",
    "NativeHit",
    "NativePredicate",
    "NativeRule",
    "load_native_rule",
    "native_rule",
    "prepare",
    "remote_download_https_hardened",
    "reverse_shell_hardened",
    "run_case",
]
