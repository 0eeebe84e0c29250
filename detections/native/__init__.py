"""Native (pure Python) detection rules over the decoded exec request: re-exports only."""

from __future__ import annotations

from .evaluator import NativeFamily, prepare
from .registry import PREDICATES
from .remote_download import remote_download_https_hardened
from .reverse_shell import reverse_shell_hardened
from .rule import NativeRule, compile_native_rule
from .types import NativePredicate

__all__ = [
    "PREDICATES",
    "NativeFamily",
    "NativePredicate",
    "NativeRule",
    "compile_native_rule",
    "prepare",
    "remote_download_https_hardened",
    "reverse_shell_hardened",
]
