"""The virtualenv Quix Streams runs in: ``benchmarks/.venv-quix`` (gitignored), made on demand.

quixstreams 3.x pins ``confluent-kafka < 2.13`` and we need ``>= 2.13``, so it cannot share our
venv. Our code is put on its PYTHONPATH instead (:data:`IMPORT_PATH`), and our other
dependencies are installed next to quixstreams.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from benchmarks.data import REPO

VENV = REPO / "benchmarks" / ".venv-quix"
IMPORT_PATH = f"{REPO / '.typecheck'}{os.pathsep}{REPO}"
"""``auditstream.*`` for a venv without our package: the committed links under ``.typecheck``
name the three folders as the package does (plain PYTHONPATH=REPO has no ``auditstream``)."""


def _packages() -> tuple[str, ...]:
    """quixstreams plus our own dependencies but the Kafka client (quixstreams brings its
    pinned one): what ``DetectionPipeline`` imports, read from ``pyproject.toml``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ours = [d for d in project["dependencies"] if not d.startswith("confluent-kafka")]
    return ("quixstreams", *ours)


PACKAGES = _packages()


class QuixUnavailable(RuntimeError):
    """The Quix virtualenv could not be made; the (d) figure is skipped with this reason."""


def quix_python(*, create: bool = True) -> Path:
    """The Quix venv's interpreter, creating the venv first when ``create`` and it is absent."""
    python = VENV / "bin" / "python"
    if _works(python):
        return python
    if not create:
        raise QuixUnavailable(f"{VENV} is absent (not created in --quick runs)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PACKAGES],
            check=True,
            timeout=600,
            capture_output=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        reason = f"cannot install {', '.join(PACKAGES)}: {err} {detail[-400:]!r}"
        raise QuixUnavailable(reason) from err
    if not _works(python):
        raise QuixUnavailable("quixstreams installed but does not import")
    return python


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    done = subprocess.run(
        [str(python), "-c", "import quixstreams, auditstream.detections.pipeline"],
        check=False,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": IMPORT_PATH},
    )
    return done.returncode == 0


def quix_version(python: Path) -> str:
    done = subprocess.run(
        [str(python), "-c", "import quixstreams, importlib.metadata as m; "
         "print(quixstreams.__version__, m.version('confluent-kafka'))"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip()
