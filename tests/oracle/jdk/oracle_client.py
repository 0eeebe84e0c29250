"""Builds and drives Oracle.java: the real JDK and Elasticsearch's grok library as a test oracle.

Build: ``mvn dependency:copy-dependencies`` resolves ``elasticsearch-grok`` (with the Joni and
JCodings versions Elasticsearch pins) into ``${AUDITSTREAM_CACHE:-~/.cache/auditstream}/
oracle-jdk/<hash>/lib``, and a JDK 21+ ``javac`` (the grok jar is class file 65) compiles
Oracle.java next to it. The JDK 21+ *runtime* matters on its own: ``URLDecoder`` changed its hex
parsing in 21, and Elasticsearch bundles 21 or later.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.oracle.jvm_oracle import LineOracle, OracleUnavailableError, build_once, java_major

HERE = Path(__file__).resolve().parent


def find_jdk21() -> Path:
    """The bin directory of a JDK (javac and java) of version 21 or later."""
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin")
    candidates.extend(sorted(Path("/usr/lib/jvm").glob("*/bin"), reverse=True))
    on_path = shutil.which("javac")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bin_dir in candidates:
        javac = bin_dir / "javac"
        if javac.exists() and (bin_dir / "java").exists() and java_major(str(javac)) >= 21:
            return bin_dir
    raise OracleUnavailableError("no JDK 21+ with javac found (JAVA_HOME or /usr/lib/jvm)")


def build() -> tuple[Path, Path]:
    """Resolves the jars and compiles the oracle once per source hash; returns (root, jdk bin)."""
    jdk = find_jdk21()
    root = build_once(
        HERE,
        "Oracle",
        cache="oracle-jdk",
        javac=str(jdk / "javac"),
        javac_options=lambda lib: ["-cp", os.pathsep.join(map(str, sorted(lib.glob("*.jar"))))],
        missing_tools="mvn is needed to resolve elasticsearch-grok",
    )
    return root, jdk


class JdkOracle(LineOracle):
    """A running oracle; ``ask(op, *args)`` returns the answer's fields (first one is a status)."""

    def __init__(self) -> None:
        root, jdk = build()
        jars = sorted((root / "lib").glob("*.jar"))
        classpath = os.pathsep.join([str(root / "classes"), *(str(j) for j in jars)])
        super().__init__("JDK", [str(jdk / "java"), "-cp", classpath, "Oracle"], encoding="ascii")

    def ask(self, op: str, *args: str) -> list[str]:
        fields = [op, *(a.encode("utf-8", "surrogatepass").hex() for a in args)]
        status, *rest = self.exchange("\t".join(fields)).split("\t")
        return [status, *(bytes.fromhex(r).decode("utf-8") for r in rest)]
