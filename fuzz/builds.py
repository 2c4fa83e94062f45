"""The two builds the fuzzers and tests run: the compiled modules as installed, or the pure-Python source.

The pure-Python build is the package's source copied without its extensions into a directory put first on
``sys.path``: the same thing an install with STATEFUN_WORKERS_PURE_PYTHON=1 gives, without a second venv.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ("_read", "_dispatch")
"""Two of the modules setup.py compiles, checked to tell the builds apart."""


def pure_copy(into: Path) -> Path:
    """Copy the package's source, without extensions, under ``into``; return the directory to import from."""
    shutil.copytree(ROOT / "statefun_workers", into / "statefun_workers",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    return into


def select(build: str) -> None:
    """Make ``import statefun_workers`` import ``build`` ("compiled" or "pure"); call before importing it."""
    if "statefun_workers" in sys.modules:
        raise RuntimeError("statefun_workers is already imported")
    if build == "pure":
        sys.path.insert(0, str(pure_copy(Path(tempfile.mkdtemp(prefix="statefun-pure-")))))
    elif build != "compiled":
        raise ValueError(f"build must be 'compiled' or 'pure', not {build!r}")


def check(build: str) -> None:
    """Fail unless the imported package is ``build``: a silent fallback would fuzz the other one."""
    for name in COMPILED:
        path = importlib.import_module(f"statefun_workers.{name}").__file__ or ""
        if path.endswith(".py") != (build == "pure"):
            raise RuntimeError(f"statefun_workers.{name} is {path}, not the {build} build (run `make build`)")
