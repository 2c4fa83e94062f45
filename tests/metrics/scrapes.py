"""Reading what the metrics layer exports: exposition text as samples, a multiprocess directory scraped, and
the dashboard's queries as a plain Prometheus accepts them."""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from statefun_workers import multiprocess
from tests.support import REPO

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
