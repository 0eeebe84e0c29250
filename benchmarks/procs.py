"""Contender processes: started with the repository importable, stopped politely, measured.

Peak RSS is ``VmHWM`` from ``/proc/<pid>/status``, read just before the process is stopped:
the high-water mark of resident memory over its whole life, start-up included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.data import OUT, REPO


def python_env(extra_path: Sequence[Path] = ()) -> dict[str, str]:
    """The environment with the repository (and ``extra_path``) on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(REPO), *map(str, extra_path)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PYTHONSTARTUP", None)
    return env


def spawn(argv: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
    """Start a contender with stdout/stderr in ``benchmarks/out/logs/<log_name>.log``."""
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{log_name}.log").open("wb") as log:
        return subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=python_env(), cwd=REPO
        )


def peak_rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, all its threads (librdkafka's included).

    Events per CPU-second hold up when other work shares the machine; events per wall-second
    do not.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def python() -> str:
    return sys.executable
