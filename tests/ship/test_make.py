"""``make serve`` installs what serving needs and nothing else; ``make test`` adds the test toolchain."""

from __future__ import annotations

from pathlib import Path

from .commands import run


def _planned(clone: Path, target: str) -> str:
    """The commands ``make`` would run for ``target`` in a fresh clone (no virtualenv yet)."""
    return run(["make", "-n", target], cwd=clone).stdout


def test_make_serve_installs_no_test_toolchain(clone: Path) -> None:
    plan = _planned(clone, "serve")
    assert "pip install -q -e ." in plan and "[test]" not in plan, plan
    assert "gunicorn -c gunicorn.conf.py app" in plan


def test_make_test_installs_the_test_toolchain_and_compiles(clone: Path) -> None:
    plan = _planned(clone, "test")
    assert "-e '.[test]'" in plan and "pip install -q --no-deps -e ." in plan, plan
