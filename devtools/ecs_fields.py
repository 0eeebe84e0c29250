"""ECS's generated field list (``ecs_flat``), fetched from the npm registry and cached.

Elastic publishes the Elastic Common Schema's generated definitions as the npm package
``@elastic/ecs`` (``generated/ecs_flat.ts``: every field by its dotted name with its type,
``normalize``, allowed values and expected event types; the same data as the ``ecs`` repository's
``generated/ecs/ecs_flat.yml``). The package's version is the ECS release it was generated from
(8.11.5 carries ECS 8.11.0). The Go module proxy serves ``github.com/elastic/ecs`` only up to
v1.12.0 (the 8.x tags are ``+incompatible`` and refused), hence npm.

The package's CommonJS build is read with Node.js (``npm`` and ``node`` are on the machine, like
Java for the Kafka harness) and the table is cached as JSON under
``${AUDITSTREAM_CACHE:-~/.cache/auditstream}/ecs/``.

    python -m devtools.ecs_fields [VERSION]   # fetch into the cache, print the JSON's path
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Final

from devtools.jvm.process import HarnessError, cache_dir, cached_dir

NPM_PACKAGE: Final = "@elastic/ecs"
DEFAULT_VERSION: Final = "8.11.5"
"""npm version of ``@elastic/ecs`` whose ECS release (8.11.0) the alerts declare."""
_DUMP: Final = (
    "const flat = require(process.argv[1]).EcsFlat;process.stdout.write(JSON.stringify(flat));"
)


def ecs_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_dir() / "ecs" / f"elastic-ecs-{version}"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise HarnessError(f"{name} is needed to read ECS's field list from npm and is not found")
    return found


def _build(version: str) -> Any:
    def build(out: Path) -> None:
        subprocess.run(
            [_tool("npm"), "pack", "--silent", f"{NPM_PACKAGE}@{version}"],
            cwd=out, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        [tarball] = out.glob("*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(out, filter="data")
        module = out / "package" / "build" / "commonjs" / "ecs_flat.js"
        if not module.is_file():
            raise HarnessError(f"{NPM_PACKAGE}@{version} has no build/commonjs/ecs_flat.js")
        dumped = subprocess.run(
            [_tool("node"), "-e", _DUMP, str(module)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        (out / "ecs_flat.json").write_bytes(dumped.stdout)
        tarball.unlink()
        shutil.rmtree(out / "package")

    return build


def ecs_flat(version: str = DEFAULT_VERSION) -> dict[str, dict[str, Any]]:
    """Every ECS field of the release, by its dotted name (fetched on first use)."""
    folder = cached_dir(ecs_dir(version), _build(version))
    table: dict[str, dict[str, Any]] = json.loads((folder / "ecs_flat.json").read_text())
    return table


def main(argv: list[str]) -> int:
    version = argv[0] if argv else DEFAULT_VERSION
    table = ecs_flat(version)
    print(f"{ecs_dir(version) / 'ecs_flat.json'}: {len(table)} fields")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
