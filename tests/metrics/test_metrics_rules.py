"""The Prometheus rules and the Grafana dashboard: promtool checks them, and every metric they use exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from statefun_workers.metrics import FAMILIES
from tests.support import require_tool

from .scrapes import DASHBOARD, REPO, dashboard_queries

RULES = REPO / "deploy" / "prometheus" / "statefun-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "statefun-rules.test.yml"



def run(*args: str) -> str:
    promtool = require_tool("promtool", "Debian's prometheus package (scripts/install-system-deps.sh)")
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in run("check", "rules", str(RULES))


def test_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in run("test", "rules", str(RULE_TESTS))


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule: a syntax error fails the check."""
    queries = dashboard_queries()
    assert len(queries) >= 15
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(queries)} rules found" in run("check", "rules", str(path))


def referenced_families(text: str) -> set[str]:
    names = set(re.findall(r"\bstatefun_[a-z_]+", text)) - {"statefun_workers"}
    families = set()
    for name in names:
        for suffix in ("_total", "_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name.removesuffix(suffix) in FAMILIES:
                name = name.removesuffix(suffix)
        families.add(name)
    return families


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["rules", "dashboard"])
def test_only_declared_metrics_are_used(path: Path) -> None:
    text = path.read_text()
    if path == RULES:  # recording rule names are not metrics of ours
        text = "\n".join(line for line in text.splitlines() if "record:" not in line)
        text = re.sub(r"\w+:statefun_\w+:\w+", "", text)
    used = referenced_families(text)
    assert used and used <= set(FAMILIES), used - set(FAMILIES)
    if path == DASHBOARD:
        assert used == set(FAMILIES)  # every metric is on the dashboard
