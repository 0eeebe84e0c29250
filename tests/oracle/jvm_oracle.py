"""What the JVM test oracles (tests/oracle/jdk, tests/oracle/lucene) have in common.

Each oracle is one Java source file built once per source hash into
``${AUDITSTREAM_CACHE:-~/.cache/auditstream}/<name>/<hash>``: Maven copies the dependencies into
``lib``, javac compiles into ``classes``. The running oracle reads one request line on stdin and
answers with one line on stdout.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path


class OracleUnavailableError(RuntimeError):
    """The toolchain to build or run the oracle is missing."""


def cache_dir(name: str, sources: Sequence[Path]) -> Path:
    """The oracle's build directory: one per hash of its sources (pom.xml, the .java file)."""
    root = os.environ.get("AUDITSTREAM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "auditstream"
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.read_bytes())
    return base / name / digest.hexdigest()[:16]


def java_major(tool: str) -> int:
    """The major version that ``java -version`` or ``javac -version`` reports; 0 if none."""
    done = subprocess.run([tool, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'(?:version "|javac )(\d+)', done.stderr + done.stdout)
    return int(found.group(1)) if found else 0


def copy_dependencies(mvn: str, pom: Path, lib: Path) -> None:
    """Resolve the dependencies `pom` declares into `lib`."""
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
        timeout=600,
    )


def compile_classes(javac: str, options: Sequence[str], source: Path, root: Path) -> None:
    """Compile `source` into ``root/classes``, through a staging directory renamed at the end,
    so that an interrupted build is never taken for a finished one."""
    staging = root / f"classes.{os.getpid()}"
    subprocess.run(
        [javac, *options, "-d", str(staging), str(source)],
        check=True,
        timeout=300,
    )
    if not (root / "classes").exists():
        staging.rename(root / "classes")


def build_once(
    here: Path,
    main: str,
    *,
    cache: str,
    javac: str | None,
    javac_options: Callable[[Path], Sequence[str]],
    missing_tools: str,
) -> Path:
    """Build ``here/<main>.java`` against the dependencies of ``here/pom.xml``, unless the cache
    already holds this version; return the cache directory (``lib``, ``classes``).

    `javac_options` gets the ``lib`` directory; `missing_tools` is the error when mvn or javac
    is not found.
    """
    source = here / f"{main}.java"
    root = cache_dir(cache, [here / "pom.xml", source])
    if (root / "classes" / f"{main}.class").exists():
        return root
    mvn = shutil.which("mvn")
    if mvn is None or javac is None:
        raise OracleUnavailableError(missing_tools)
    copy_dependencies(mvn, here / "pom.xml", root / "lib")
    compile_classes(javac, javac_options(root / "lib"), source, root)
    return root


class LineOracle:
    """A running oracle JVM: `exchange` sends one request line and returns the answer line."""

    def __init__(self, name: str, argv: Sequence[str], *, encoding: str) -> None:
        self._name = name
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding=encoding,
        )

    def read_line(self) -> str:
        """The next line the oracle writes, without its newline ("" once it has exited)."""
        assert self._proc.stdout is not None
        return self._proc.stdout.readline().rstrip("\n")

    def exchange(self, request: str) -> str:
        assert self._proc.stdin is not None
        self._proc.stdin.write(request + "\n")
        self._proc.stdin.flush()
        answer = self.read_line()
        if not answer:
            raise RuntimeError(f"the {self._name} oracle died")
        return answer

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
