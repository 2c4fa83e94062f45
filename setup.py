"""Build: compile the protocol's hot modules with mypyc, or fall back to pure Python.

The modules below are plain, type-checked Python (mypy --strict). mypyc compiles that same source to C
extensions, about 2x faster per batch than uncompiled (README, "Performance"); nothing else changes.
Without a C compiler, or with STATEFUN_WORKERS_PURE_PYTHON=1, the package installs as pure Python and
behaves the same.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED_MODULES = [
    "statefun_workers/_wire.py",
    "statefun_workers/types.py",
    "statefun_workers/messages.py",
    "statefun_workers/egress.py",
    "statefun_workers/context.py",
    "statefun_workers/_dispatch.py",
    "statefun_workers/cells.py",
    "statefun_workers/_read.py",
    "statefun_workers/_tally.py",
    "statefun_workers/_json.py",
]


def _warn(message: str) -> None:
    print(f"statefun-workers: {message}; installing the pure-Python modules", file=sys.stderr)


def _remove_inplace_extensions() -> None:
    """Delete extensions an earlier in-place (editable) build left next to the source: falling back to pure
    Python with them there would run the old compiled code instead of the edited source."""
    package = os.path.join(os.path.dirname(os.path.abspath(__file__)), "statefun_workers")
    stems = [os.path.splitext(os.path.basename(path))[0] for path in COMPILED_MODULES] + ["_compiled__mypyc"]
    for name in os.listdir(package) if os.path.isdir(package) else ():
        if name.endswith((".so", ".pyd")) and name.split(".")[0] in stems:
            os.remove(os.path.join(package, name))


class OptionalBuildExt(build_ext):
    """Build the extensions if this machine can; otherwise leave none behind, and say so."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as ex:  # noqa: BLE001 - any failure means: no extensions
            for path in self.get_outputs():
                if os.path.exists(path):
                    os.remove(path)
            _remove_inplace_extensions()
            _warn(f"compiling with mypyc failed ({ex})")


def extensions() -> list:
    if os.environ.get("STATEFUN_WORKERS_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc is not available")
        return []
    try:
        # NOTE: the shared runtime library goes inside the package (not at the top level, mypyc's default),
        #   so that an editable install, which maps only the package, finds it from any directory.
        return mypycify(COMPILED_MODULES, opt_level="3", group_name="statefun_workers._compiled")
    except (Exception, SystemExit) as ex:  # noqa: BLE001 - mypyc exits on a type error
        _warn(f"mypyc could not compile the modules ({ex})")
        _remove_inplace_extensions()
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
