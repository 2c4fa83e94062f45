"""What the shipping tests run: commands that fail with their output, a clone of the checkout, and an
environment that points nowhere near it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO


def run(args: list[str], *, timeout: float = 900, check: bool = True,
        **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected exit code fail with its output."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited with {done.returncode}:\n{done.stdout[-4000:]}\n"
                    f"{done.stderr[-6000:]}")
    return done


def copy_checkout(target: Path) -> Path:
    """Copy the files a clone of this working tree would have into ``target``."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would point a process at the checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith(("STATEFUN_", "PROMETHEUS_"))}
    env.update(extra)
    return env
