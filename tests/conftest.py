"""Suite-wide checks before any test runs."""

from __future__ import annotations

import importlib.machinery
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "statefun_workers"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test stale compiled modules: a mypyc extension older than its source would shadow the edit."""
    stale = []
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for extension in PACKAGE.glob(f"*{suffix}"):
            source = extension.with_name(extension.name[: -len(suffix)] + ".py")
            if source.exists() and source.stat().st_mtime > extension.stat().st_mtime:
                stale.append(source.name)
    if stale:
        raise pytest.UsageError(
            f"compiled modules older than their source: {', '.join(sorted(stale))}; run `make build` "
            f"(or `make test`, which rebuilds them)")
