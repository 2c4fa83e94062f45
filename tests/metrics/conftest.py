"""Fixtures of the metrics tests: a multiprocess directory and scrapes of it, without forking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import values

from statefun_workers import multiprocess

from .scrapes import Samples, scrape_dir


@pytest.fixture
def mpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A prepared directory; prepare_directory's process-wide changes are undone afterwards."""
    path = str(tmp_path / "mp")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", path)
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    return multiprocess.prepare_directory(path)


@pytest.fixture
def scrape(mpdir: str) -> Callable[[], Samples]:
    return lambda: scrape_dir(mpdir)
