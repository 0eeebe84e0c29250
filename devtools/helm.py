"""The Go-built tools the chart tests need: `helm`, the `kubevalidate` checker, and CRD schemas.

Nothing here is downloaded from anywhere but the Go module proxy, through `go` itself: `helm`
is `go install helm.sh/helm/v4/cmd/helm@HELM_VERSION`, `kubevalidate` is built from
`devtools/kubevalidate/` (its go.sum pins every dependency), and the ServiceMonitor and
ScaledObject CRDs are the YAML files published inside the prometheus-operator and KEDA Go
modules (`go mod download`). Binaries land in `${AUDITSTREAM_CACHE:-~/.cache/auditstream}/bin`
under names that carry their version (helm) or a hash of their sources (kubevalidate), so a
second run reuses them and a change rebuilds them. Go's own caches (GOMODCACHE, GOCACHE) make a
rebuild after a source change take seconds.

    python3 -m devtools.helm fetch     # build or reuse everything, print the paths (CI pre-warm)

Stdlib only, like the rest of devtools.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.jvm.process import REPO_ROOT, HarnessError, cache_dir

__all__ = ["HELM_VERSION", "Tools", "crd_files", "helm_binary", "kubevalidate_binary", "tools"]

HELM_VERSION: Final = "v4.3.2"
KUBEVALIDATE_SOURCE: Final = REPO_ROOT / "devtools" / "kubevalidate"
# (module, version, path of the CRD file inside the module). KEDA v2.21.1's go.mod asks for
# Go 1.27, which `go mod download` refuses on the machines' Go 1.26: v2.21.0 is the newest here.
CRD_SOURCES: Final = (
    (
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
    ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml"),
    (
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ),
)
# A cold `go install` of helm took 4 minutes here; leave room for a slow proxy.
_GO_TIMEOUT: Final = 1800.0


@dataclass(frozen=True, slots=True)
class Tools:
    """Everything a chart test runs: the two binaries and the CRD files kubevalidate reads."""

    helm: Path
    kubevalidate: Path
    crds: tuple[Path, ...]


def tools() -> Tools:
    return Tools(helm_binary(), kubevalidate_binary(), crd_files())


def helm_binary() -> Path:
    """`helm` HELM_VERSION, installed into the cache once."""
    target = _bin_dir() / f"helm-{HELM_VERSION}"
    with _locked():
        if not target.exists():
            _install_into(target, ["install", f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}"], "helm")
    return target


def kubevalidate_binary() -> Path:
    """The validator built from this checkout's sources (rebuilt when they change)."""
    target = _bin_dir() / f"kubevalidate-{_source_hash(KUBEVALIDATE_SOURCE)}"
    with _locked():
        if not target.exists():
            _install_into(
                target, ["build", "-mod=readonly", "-buildvcs=false", "-o"], "kubevalidate"
            )
            for stale in target.parent.glob("kubevalidate-*"):
                if stale != target:
                    stale.unlink()  # built from sources that changed since
    return target


def crd_files() -> tuple[Path, ...]:
    """The published CRD YAML files, from the Go module cache (downloaded on first use)."""
    paths: list[Path] = []
    for module, version, inside in CRD_SOURCES:
        found = _run_go(["mod", "download", "-json", f"{module}@{version}"], cwd=None)
        info = json.loads(found)
        if info.get("Error") or not info.get("Dir"):
            raise HarnessError(f"go mod download {module}@{version}: {info.get('Error')}")
        path = Path(info["Dir"]) / inside
        if not path.is_file():
            raise HarnessError(f"{module}@{version} has no {inside}")
        paths.append(path)
    return tuple(paths)


def _install_into(target: Path, args: list[str], name: str) -> None:
    """Build into a scratch folder beside `target`, then rename: a build killed half-way never
    leaves a file that a later run would take for a finished binary."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as scratch:
        built = Path(scratch) / name
        if args[0] == "install":
            _run_go(args, cwd=Path(scratch), extra_env={"GOBIN": scratch})
        else:
            _run_go([*args, str(built), "."], cwd=KUBEVALIDATE_SOURCE)
        built.replace(target)


def _run_go(args: list[str], cwd: Path | None, extra_env: dict[str, str] | None = None) -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise HarnessError(
            "`go` is not on PATH; the chart tests build helm and kubevalidate with it"
        )
    env = {**os.environ, **(extra_env or {})}
    env["GOWORK"] = "off"  # no go.work of a parent folder may change what is built
    result = subprocess.run(
        [go, *args],
        cwd=cwd or tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=_GO_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(f"go {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


def _source_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _bin_dir() -> Path:
    folder = cache_dir() / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One build at a time across processes (two pytest runs, CI's pre-warm and a developer)."""
    with (_bin_dir() / ".go-tools.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.helm", description=__doc__.split("\n")[0]
    )
    parser.add_subparsers(dest="command", required=True).add_parser(
        "fetch", help="build or reuse helm and kubevalidate, download the CRDs, print their paths"
    )
    parser.parse_args(argv)
    try:
        found = tools()
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in (found.helm, found.kubevalidate, *found.crds):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
