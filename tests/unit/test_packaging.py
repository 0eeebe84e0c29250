"""What ``pip install .`` puts on a machine: one import name, every package, no dev tools.

The fixed top-level folders (``stream/``, ``detections/``, ``schemas/``) install as
``auditstream.stream`` and so on, so the project claims a single name in site-packages.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("stream", "detections", "schemas")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("auditstream-*.whl")
    return zipfile.ZipFile(built)


def _packages_on_disk() -> set[str]:
    return {
        "auditstream." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }


def test_wheel_installs_one_top_level_name(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {name.split("/", 1)[0] for name in names if ".dist-info/" not in name}
    assert tops == {"auditstream"}
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["auditstream"]


def test_wheel_holds_every_package_and_its_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    packaged = {
        name.removesuffix("/__init__.py").replace("/", ".")
        for name in names
        if name.endswith("/__init__.py")
    }
    assert packaged == _packages_on_disk()
    assert "auditstream/schemas/alert.avsc" in names
    assert "auditstream/detections/py.typed" in names
    rules = [n for n in names if n.startswith("auditstream/detections/rules/")]
    assert len(rules) == len(list((ROOT / "detections" / "rules").glob("*.toml")))


def test_wheel_ships_no_dev_tools(wheel: zipfile.ZipFile) -> None:
    """The traffic generator, the JVM harness, tests and benchmarks stay in the checkout."""
    for name in wheel.namelist():
        assert not name.startswith(("devtools/", "tests/", "benchmarks/")), name
        assert "/traffic" not in name and "/harness" not in name, name


def test_installed_code_imports_without_the_checkout_on_the_path(tmp_path: Path) -> None:
    """Run from elsewhere: every module imports by its ``auditstream`` name alone, and none of
    them reaches for a top-level ``stream``/``detections``/``schemas`` (or for ``devtools``)."""
    script = (
        "import importlib, pkgutil, sys\n"
        "import auditstream.stream, auditstream.detections, auditstream.schemas\n"
        "for pkg in (auditstream.stream, auditstream.detections):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] in {'stream', 'detections', 'schemas', 'devtools'})\n"
        "print(len([m for m in sys.modules if m.startswith('auditstream.')]), bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    count, bad = result.stdout.split(" ", 1)
    assert bad.strip() == "[]"
    assert int(count) >= 60
