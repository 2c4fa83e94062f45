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


REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboard.json"
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "",
    "$namespace": ".*",
    "$job": ".*",
    "$typename": ".*",
}


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panel targets, and the selectors of its variables), with
    Grafana's variables replaced by values a plain Prometheus accepts."""
    import json
    import re

    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        m = re.fullmatch(r"label_values\((.*), *\w+\)", query)
        if m:
            exprs.append(m.group(1))
    out = []
    for expr in exprs:
        for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
            expr = expr.replace(name, GRAFANA_VARIABLES[name])
        out.append(expr)
    return out
