"""The code passes the project's linters: ruff (the rules in pyproject.toml) and mypy --strict on the package."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff():
    done = _run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_on_the_package():
    done = _run("mypy", "--no-incremental", "statefun_workers")
    assert done.returncode == 0, done.stdout + done.stderr
