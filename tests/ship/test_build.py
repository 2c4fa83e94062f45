"""The build compiles the hot modules, or fails and says why; pure Python only when asked or without a compiler.

Each test builds the project for real (setuptools, mypyc, the C compiler), from a copy of the checkout.
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from statefun_workers.build_info import COMPILED_MODULES as COMPILED

from .commands import REPO, clean_env, copy_checkout, run

pytestmark = pytest.mark.slow


def _extensions(wheel: Path) -> set[str]:
    """Names of the compiled modules in a wheel (``statefun_workers/<name>.cpython-...so`` -> ``name``)."""
    with zipfile.ZipFile(wheel) as z:
        return {re.sub(r"\..*", "", Path(n).name) for n in z.namelist() if n.endswith((".so", ".pyd"))}


def test_sdist_builds_a_compiled_wheel_and_both_pass_twine_check(dist: Path) -> None:
    sdists, wheels = list(dist.glob("*.tar.gz")), list(dist.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(dist.iterdir())
    assert set(COMPILED) <= _extensions(wheels[0]), _extensions(wheels[0])
    checked = run([sys.executable, "-m", "twine", "check", "--strict", str(sdists[0]), str(wheels[0])])
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_build_requirements_pin_what_the_type_checker_of_the_tests_uses() -> None:
    """mypy decides whether mypyc compiles: the build must see the mypy, stubs and orjson the tests check with."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    build = {re.split(r"[=<>;]", r)[0]: r for r in project["build-system"]["requires"]}
    test = {re.split(r"[=<>;]", r)[0]: r for r in project["project"]["optional-dependencies"]["test"]}
    for name in ("mypy", "types-protobuf", "orjson"):
        assert "==" in build[name], f"{name} is not pinned in [build-system] requires"
        assert build[name] == test[name], f"{name}: build {build[name]!r} but tests {test[name]!r}"


def _wheel(source: Path, out: Path, **env: str) -> tuple[object, Path | None]:
    """``python -m build --wheel`` of ``source`` with ``env``: (the finished process, the wheel or None)."""
    done = run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)], check=False,
               env=clean_env(**env))
    wheels = list(out.glob("*.whl"))
    return done, (wheels[0] if wheels else None)


def test_a_module_mypy_rejects_fails_the_build(tmp_path: Path) -> None:
    source = copy_checkout(tmp_path / "src")
    wire = source / "statefun_workers" / "_wire.py"
    wire.write_text(wire.read_text() + "\n\ndef _broken() -> int:\n    return 'not an int'\n")
    done, wheel = _wheel(source, tmp_path / "out")
    assert done.returncode != 0 and wheel is None  # type: ignore[attr-defined]
    assert "mypy found errors" in done.stderr and "_wire.py" in done.stdout + done.stderr  # type: ignore[attr-defined]


def test_pure_python_on_request_says_so_and_leaves_the_checkout_alone(tmp_path: Path) -> None:
    """The old build deleted in-place extensions of the checkout it built from; nothing may go now."""
    source = copy_checkout(tmp_path / "src")
    inplace = source / "statefun_workers" / "_wire.cpython-311-x86_64-linux-gnu.so"
    inplace.write_bytes(b"an earlier editable build's extension")
    done, wheel = _wheel(source, tmp_path / "out", STATEFUN_WORKERS_PURE_PYTHON="1")
    assert done.returncode == 0 and wheel is not None, done.stderr  # type: ignore[attr-defined]
    assert _extensions(wheel) == set()
    assert "STATEFUN_WORKERS_PURE_PYTHON=1" in done.stderr  # type: ignore[attr-defined]
    assert inplace.read_bytes() == b"an earlier editable build's extension"


def test_without_a_c_compiler_the_build_warns_and_installs_pure_python(tmp_path: Path) -> None:
    source = copy_checkout(tmp_path / "src")
    done, wheel = _wheel(source, tmp_path / "out", CC=str(tmp_path / "no-such-cc"))
    assert done.returncode == 0 and wheel is not None, done.stderr  # type: ignore[attr-defined]
    assert _extensions(wheel) == set()
    assert "WARNING: no C compiler found" in done.stderr  # type: ignore[attr-defined]
