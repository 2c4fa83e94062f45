"""Build: compile the protocol's hot modules with mypyc, or fail and say why.

The modules below are plain, type-checked Python (mypy --strict). mypyc compiles that same source to C
extensions, about 2x faster per batch than uncompiled (README, "Performance"); nothing else changes.

A build that cannot compile them fails, because a silent fallback ships a server at half speed. Two cases
install the pure-Python modules instead, with a warning: ``STATEFUN_WORKERS_PURE_PYTHON=1`` (asked for), or no
C compiler on the machine. The server says at start which one runs (``compiled`` in its first log line and in
the ``statefun_build_info`` metric).

The build never deletes or writes files of the source tree other than what setuptools itself writes
(``build/``, ``*.egg-info``; an editable install also puts the extensions next to the source).
"""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext


def compiled_modules() -> list[str]:
    """The paths of ``statefun_workers.build_info.COMPILED_MODULES`` (the one list), read from the file's text."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "statefun_workers", "build_info.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED_MODULES":
            return [f"statefun_workers/{name}.py" for name in ast.literal_eval(node.value)]
    raise SystemExit("statefun-workers: statefun_workers/build_info.py has no COMPILED_MODULES tuple")


_HINT = ("install a C compiler and Python's headers (Debian: gcc python3-dev), or set "
         "STATEFUN_WORKERS_PURE_PYTHON=1 to install the slower pure-Python modules on purpose")


def _say(message: str) -> None:
    print(f"\n*** statefun-workers: {message}\n", file=sys.stderr, flush=True)


def _c_compiler() -> str | None:
    """The C compiler setuptools would call (``$CC``, else the one Python was built with), if it exists."""
    configured = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(configured)
    return shutil.which(words[0]) if words else None


class LoudBuildExt(build_ext):
    """setuptools' build_ext, adding what to do when the C compilation fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as ex:
            _say(f"compiling the mypyc modules failed ({ex}): {_HINT}")
            raise


def extensions() -> list:
    if os.environ.get("STATEFUN_WORKERS_PURE_PYTHON") == "1":
        _say("STATEFUN_WORKERS_PURE_PYTHON=1: installing the pure-Python modules (about 2x slower per batch)")
        return []
    if _c_compiler() is None:
        _say("WARNING: no C compiler found; installing the pure-Python modules (about 2x slower per batch). "
             "The server logs compiled=false at start. To compile, " + _HINT.split(", or")[0])
        return []
    # NOTE: a missing mypyc is a broken build environment (pyproject.toml requires it): let the ImportError out.
    from mypyc.build import mypycify

    try:
        # NOTE: the shared runtime library goes inside the package (not at the top level, mypyc's default),
        #   so that an editable install, which maps only the package, finds it from any directory.
        return mypycify(compiled_modules(), opt_level="3", group_name="statefun_workers._compiled")
    except SystemExit as ex:  # mypyc exits after printing the type errors it found
        _say("mypy found errors in the modules to compile (above); the build stops here. The build requirements "
             "in pyproject.toml pin what mypy's verdict depends on. Or set STATEFUN_WORKERS_PURE_PYTHON=1")
        raise SystemExit(f"statefun-workers: mypyc could not compile the modules (exit {ex.code})") from None


setup(ext_modules=extensions(), cmdclass={"build_ext": LoudBuildExt})
