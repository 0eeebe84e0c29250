"""A scripted chaos soak of the service (issue #16): replicas killed, stopped, joining and leaving,
brokers killed, the registry restarted, poison in the input; then an invariant checker.

    python -m devtools.soak --duration 300 --seed 7 [--delivery exactly-once] [--report FILE]

See docs/reliability.md for what it does and what it checks.
"""

from devtools.soak.checker import CheckResult, check
from devtools.soak.config import SoakConfig
from devtools.soak.report import markdown, text, write_report
from devtools.soak.result import SoakResult
from devtools.soak.runner import run_soak

__all__ = [
    "CheckResult",
    "SoakConfig",
    "SoakResult",
    "check",
    "markdown",
    "run_soak",
    "text",
    "write_report",
]
