"""Builds and drives Oracle.java: the real JDK and Elasticsearch's grok library as a test oracle.

Build: ``mvn dependency:copy-dependencies`` resolves ``elasticsearch-grok`` (with the Joni and
JCodings versions Elasticsearch pins) into ``${AUDITSTREAM_CACHE:-~/.cache/auditstream}/
oracle-jdk/<hash>/lib``, and a JDK 21+ ``javac`` (the grok jar is class file 65) compiles
Oracle.java next to it. The JDK 21+ *runtime* matters on its own: ``URLDecoder`` changed its hex
parsing in 21, and Elasticsearch bundles 21 or later.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


class OracleUnavailableError(RuntimeError):
    """The toolchain to build or run the oracle is missing."""


def _cache_root() -> Path:
    root = os.environ.get("AUDITSTREAM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "auditstream"
    digest = hashlib.sha256()
    for name in ("pom.xml", "Oracle.java"):
        digest.update((HERE / name).read_bytes())
    return base / "oracle-jdk" / digest.hexdigest()[:16]


def _major(tool: str) -> int:
    done = subprocess.run([tool, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'(?:version "|javac )(\d+)', done.stderr + done.stdout)
    return int(found.group(1)) if found else 0


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
        if javac.exists() and (bin_dir / "java").exists() and _major(str(javac)) >= 21:
            return bin_dir
    raise OracleUnavailableError("no JDK 21+ with javac found (JAVA_HOME or /usr/lib/jvm)")


def build() -> tuple[Path, Path]:
    """Resolves the jars and compiles the oracle once per source hash; returns (root, jdk bin)."""
    jdk = find_jdk21()
    root = _cache_root()
    if (root / "classes" / "Oracle.class").exists():
        return root, jdk
    mvn = shutil.which("mvn")
    if mvn is None:
        raise OracleUnavailableError("mvn is needed to resolve elasticsearch-grok")
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
    staging = root / f"classes.{os.getpid()}"
    classpath = os.pathsep.join(str(jar) for jar in sorted(lib.glob("*.jar")))
    subprocess.run(
        [str(jdk / "javac"), "-d", str(staging), "-cp", classpath, str(HERE / "Oracle.java")],
        check=True,
        timeout=300,
    )
    if not (root / "classes").exists():
        staging.rename(root / "classes")
    return root, jdk


class JdkOracle:
    """A running oracle; ``ask(op, *args)`` returns the answer's fields (first one is a status)."""

    def __init__(self) -> None:
        root, jdk = build()
        jars = sorted((root / "lib").glob("*.jar"))
        classpath = os.pathsep.join([str(root / "classes"), *(str(j) for j in jars)])
        self._proc = subprocess.Popen(
            [str(jdk / "java"), "-cp", classpath, "Oracle"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="ascii",
        )

    def ask(self, op: str, *args: str) -> list[str]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        fields = [op, *(a.encode("utf-8", "surrogatepass").hex() for a in args)]
        self._proc.stdin.write("\t".join(fields) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline().rstrip("\n")
        if not line:
            raise RuntimeError("the JDK oracle died")
        status, *rest = line.split("\t")
        return [status, *(bytes.fromhex(r).decode("utf-8") for r in rest)]

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
