"""The native predicates by the name a rule file gives in ``predicate = "..."``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .remote_download import remote_download_https_hardened
from .reverse_shell import reverse_shell_hardened
from .types import NativePredicate

PREDICATES: Mapping[str, NativePredicate] = MappingProxyType(
    {
        "reverse_shell_hardened": reverse_shell_hardened,
        "remote_download_https_hardened": remote_download_https_hardened,
    }
)
