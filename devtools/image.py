"""The service image, built and run without a Docker engine or an image registry.

These machines reach Debian's archive and PyPI, not Docker Hub, and have no container engine
that runs images (``podman run`` is refused cgroups and rlimits). So the base comes from Debian
packages (``mmdebstrap``: a minimal bookworm with its Python 3.11), the image is built from
``compose/Dockerfile`` by ``buildah bud --isolation chroot`` with the dependency wheels built on
the host beforehand (no index inside the build), and commands run in it with ``buildah run
--isolation chroot`` on the host network, which reaches a broker on loopback.

    python -m devtools.image base    # the Debian base image (once; about a minute)
    python -m devtools.image build   # base, wheels and image; prints the image name
    python -m devtools.image size    # the image's and the base's sizes

Every step is cached: the base and the image carry a label with the hash of their inputs and are
rebuilt only when it changes, and the wheelhouse (under ``${AUDITSTREAM_CACHE}/image``) is
refilled only when the dependencies change. Stdlib only, like the JVM harness.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.jvm.process import REPO_ROOT, cache_dir

IMAGE = "localhost/auditstream:test"
BASE_IMAGE = "localhost/auditstream-base:bookworm"
KEY_LABEL = "org.auditstream.inputs"
DOCKERFILE = REPO_ROOT / "compose" / "Dockerfile"
SERVICE_UID = 10001

TOOLS = {"buildah": "buildah", "mmdebstrap": "mmdebstrap"}  # command -> Debian package
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
SUITE = "bookworm"
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# Documentation, manuals and translations are dropped (licences kept); merged /usr without the
# usrmerge package, which would pull in perl: 129 MB instead of 179 MB.
MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    '--aptopt=Acquire::Languages "none"',
)
# What the image's build stage copies (the rest of the checkout is in .dockerignore).
SOURCE_INPUTS = ("pyproject.toml", "README.md", "stream", "detections", "schemas")


class ImageError(RuntimeError):
    """A tool is missing and cannot be installed, or a build or run step failed."""


def image_cache() -> Path:
    return cache_dir() / "image"


def _run(cmd: Sequence[str], *, timeout: float = 900, env: Mapping[str, str] | None = None) -> str:
    """Run a command; its stdout, or an ImageError holding its output."""
    done = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=timeout, check=False,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip
    if done.returncode != 0:
        raise ImageError(f"{' '.join(cmd)} exited with {done.returncode}:\n{done.stderr[-4000:]}")
    return done.stdout


def ensure_tools() -> None:
    """Install buildah and mmdebstrap from Debian's archive when they are missing (root only)."""
    missing = [package for command, package in TOOLS.items() if shutil.which(command) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ImageError(f"install {' '.join(missing)} (Debian packages): they are not on PATH")
    apt = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600"]
    noninteractive = {"DEBIAN_FRONTEND": "noninteractive"}
    _run([*apt, "update"], env=noninteractive)
    _run([*apt, "install", "-y", *missing], env=noninteractive)


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big") + part)
    return hasher.hexdigest()[:16]


def _label(image: str) -> str | None:
    """The inputs label of a local image, or None when there is no such image."""
    done = subprocess.run(
        ["buildah", "inspect", "--type", "image", image],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    labels = json.loads(done.stdout)["OCIv1"]["config"].get("Labels") or {}
    label = labels.get(KEY_LABEL)
    return label if isinstance(label, str) else None


def image_id(image: str) -> str:
    return _run(["buildah", "images", "--no-trunc", "--quiet", image]).split()[0]


def _forget(old_id: str | None, image: str) -> None:
    """Remove the image a rebuild untagged, unless a container still uses it."""
    if old_id is not None and old_id != image_id(image):
        subprocess.run(["buildah", "rmi", old_id], capture_output=True, timeout=60, check=False)


def base() -> str:
    """The Debian base image (name), built by mmdebstrap unless an identical one exists."""
    ensure_tools()
    key = _digest(SUITE.encode(), *map(str.encode, BASE_PACKAGES + SOURCES + MMDEBSTRAP_OPTIONS))
    if _label(BASE_IMAGE) == key:
        return BASE_IMAGE
    old = image_id(BASE_IMAGE) if _label(BASE_IMAGE) is not None else None
    image_cache().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=image_cache()) as work:
        tarball = Path(work) / "rootfs.tar"
        _run(["mmdebstrap", *MMDEBSTRAP_OPTIONS, f"--include={','.join(BASE_PACKAGES)}",
              SUITE, str(tarball), *SOURCES])  # fmt: skip
        container = _run(["buildah", "from", "scratch"]).strip()
        try:
            _run(["buildah", "add", "--quiet", container, str(tarball), "/"])
            _run(["buildah", "config", "--label", f"{KEY_LABEL}={key}", "--cmd", "/bin/sh",
                  "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                  container])  # fmt: skip
            _run(["buildah", "commit", "--quiet", container, BASE_IMAGE])
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
    _forget(old, BASE_IMAGE)
    return BASE_IMAGE


def requirements() -> list[str]:
    """What the build stage installs from /wheels: the dependencies and the build backend."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def wheels() -> Path:
    """A wheelhouse with every requirement, filled with this interpreter's pip.

    The host's platform is the image's (x86_64 glibc, CPython 3.11), so its wheels install in the
    image. Refilled (from the wheelhouse itself, then from PyPI for what is missing) only when the
    requirements change."""
    house = image_cache() / "wheels"
    stamp = house / ".requirements"
    wanted = "\n".join(requirements())
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        return house
    if importlib.util.find_spec("pip") is None:
        raise ImageError(f"{sys.executable} has no pip: run this with the project's venv")
    house.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(house),
           "--find-links", str(house), "--only-binary", ":all:", *requirements()]  # fmt: skip
    try:
        _run([*pip, "--no-index"])
    except ImageError:
        _run(pip)
    stamp.write_text(wanted, encoding="utf-8")
    return house


def _source_files() -> Iterator[Path]:
    for name in SOURCE_INPUTS:
        path = REPO_ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        yield from (f for f in files if "__pycache__" not in f.parts and f.suffix != ".pyc")


def build() -> str:
    """The image (name), built on the Debian base unless one from the same inputs exists."""
    base_id = image_id(base())
    house = wheels()
    sources = [
        part
        for path in _source_files()
        for part in (str(path.relative_to(REPO_ROOT)).encode(), path.read_bytes())
    ]
    key = _digest(
        base_id.encode(),
        DOCKERFILE.read_bytes(),
        (REPO_ROOT / ".dockerignore").read_bytes(),
        *sorted(p.name.encode() for p in house.glob("*.whl")),
        *sources,
    )
    if _label(IMAGE) == key:
        return IMAGE
    old = image_id(IMAGE) if _label(IMAGE) is not None else None
    _run(["buildah", "bud", "--isolation", "chroot", "--format", "docker", "--quiet",
          "--build-arg", f"BASE={BASE_IMAGE}", "--build-arg", "PIP_NO_INDEX=1",
          "--volume", f"{house}:/wheels:ro", "--label", f"{KEY_LABEL}={key}",
          "--file", str(DOCKERFILE), "--tag", IMAGE, str(REPO_ROOT)])  # fmt: skip
    _forget(old, IMAGE)
    return IMAGE


def size(image: str) -> str:
    """The image's size as buildah reports it (uncompressed, all layers)."""
    listed = json.loads(_run(["buildah", "images", "--json", image]))
    return str(listed[0]["size"])


@dataclass
class Container:
    """A working container of an image, for ``buildah run``; ``with`` removes it at the end."""

    name: str
    prepared: bool = False

    @classmethod
    def create(cls, image: str) -> Container:
        name = f"auditstream-{uuid.uuid4().hex[:12]}"
        _run(["buildah", "from", "--quiet", "--pull=never", "--name", name, image])
        return cls(name)

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=60, check=False)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remove()

    def rootfs(self) -> Path:
        return Path(_run(["buildah", "mount", self.name]).strip())

    def read_only_volumes(self) -> list[str]:
        """``--volume`` options that make every directory of the image read-only.

        buildah run has no ``--read-only`` and cannot bind the root itself read-only (its own
        mount points are created after), so each top-level directory, and each one under /run,
        is bound read-only onto itself. Left writable: the root and /run themselves (root's,
        mode 755: buildah makes its mount points there) and the kernel's /dev, /proc, /sys.
        One run without them first lets buildah create the mount points it needs in the image's
        directories (/etc/hosts, /etc/resolv.conf...) in the container's own layer."""
        if not self.prepared:
            _run(["buildah", "run", "--isolation", "chroot", self.name, "--", "true"])
            self.prepared = True
        root = self.rootfs()
        volumes: list[str] = []
        for top in (root, root / "run"):
            for entry in sorted(top.iterdir()):
                if entry.is_dir() and not entry.is_symlink():
                    inside = "/" + str(entry.relative_to(root))
                    if inside not in ("/dev", "/proc", "/sys", "/run"):
                        volumes.append(f"{entry}:{inside}:ro")
        return volumes

    def command(
        self,
        argv: Sequence[str],
        *,
        user: int | None = None,
        env: Mapping[str, str] | None = None,
        volumes: Sequence[str] = (),
        workdir: str | None = None,
        read_only: bool = True,
    ) -> list[str]:
        """The ``buildah run`` command line: host network, the image's user unless ``user``,
        every directory of the image read-only unless ``read_only`` is false."""
        cmd = ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        if user is not None:
            cmd += ["--user", str(user)]
        if workdir is not None:
            cmd += ["--workingdir", workdir]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        mounted = {volume.split(":")[1] for volume in volumes}
        protect = self.read_only_volumes() if read_only else []
        for volume in [*volumes, *(v for v in protect if v.split(":")[1] not in mounted)]:
            cmd += ["--volume", volume]
        return [*cmd, self.name, "--", *argv]


def process_in(runner: int) -> int:
    """The pid of the command a ``buildah run`` process (pid ``runner``) runs: the deepest of
    its descendants. buildah answers SIGTERM by killing the command, so a graceful stop has to
    be sent to the command itself (chroot isolation shares the host's pid namespace)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pid = runner
    while children.get(pid):
        pid = max(children[pid])
    if pid == runner:
        raise ImageError(f"buildah run (pid {runner}) has no command running")
    return pid


def stop_gracefully(runner: int) -> None:
    os.kill(process_in(runner), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.image", description=__doc__)
    parser.add_argument("command", choices=("base", "build", "size"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "size":
            print(f"{IMAGE}: {size(IMAGE)} (base {BASE_IMAGE}: {size(BASE_IMAGE)})")
            return 0
        built = base() if args.command == "base" else build()
    except ImageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(built)
    print(f"{args.command} ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
