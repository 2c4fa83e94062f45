"""Fixtures of the metrics tests: a multiprocess directory and scrapes of it, without forking."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.parser import text_string_to_metric_families

from statefun_workers import multiprocess

sys.path.insert(0, str(Path(__file__).parent))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Exposition text -> {(sample name, sorted labels): value}."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape_dir(path: str) -> Samples:
    registry = CollectorRegistry()
    registry.register(multiprocess.LockedCollector(path))
    return parse(generate_latest(registry).decode())


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
