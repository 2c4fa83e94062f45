"""What the deploy/ tests share: where things are, which kustomizations exist, small readers of manifests, and
the server's settings under a manifest's environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import yaml

from tests.support import REPO

DEPLOY = REPO / "deploy"

# Every kustomization deploy/ ships, and what `kubectl apply -k` of it is for.
KUSTOMIZATIONS = {
    "deploy/k8s/base": "the pool, autoscaled on CPU",
    "deploy/k8s/overlays/prometheus-adapter": "the pool, autoscaled on statefun_busy via prometheus-adapter",
    "deploy/k8s/overlays/keda": "the pool, autoscaled by KEDA",
    "deploy/k8s/overlays/tls": "the pool over HTTPS with client certificates, probes on a plain admin port",
    "deploy/k8s/prometheus-adapter": "the adapter rule and APIService, for a manifest-installed adapter",
    "deploy/statefun": "the StateFun cluster (Flink engine)",
    "deploy/statefun-tls": "the StateFun cluster calling the pool over HTTPS with a client certificate",
}
# Those that deploy the pool itself.
POOL_KUSTOMIZATIONS = [
    "deploy/k8s/base", "deploy/k8s/overlays/prometheus-adapter", "deploy/k8s/overlays/keda",
    "deploy/k8s/overlays/tls",
]

POOL_NAME = "statefun-functions"

# The server's documented defaults (docs/contracts.md), used where the settings module is not there to ask.
CONTRACT_DEFAULTS = {
    "PORT": "8000",
    "STATEFUN_GRACEFUL_TIMEOUT": "30",
    "STATEFUN_TIMEOUT": "60",
    "STATEFUN_KEEPALIVE": "20",
    "STATEFUN_DRAIN_SECONDS": "0",
    "STATEFUN_MAX_REQUEST_BYTES": "33554432",
}


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of that kind (and name)."""
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def find_all(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def container(deployment: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, str]:
    """The container's literal environment (valueFrom entries are not literals and are left out)."""
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def setting(c: dict[str, Any], name: str) -> str:
    """A server setting as the container will see it: its env, else the server's default."""
    return env_of(c).get(name, CONTRACT_DEFAULTS[name])


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


_DURATION = re.compile(
    r"^\s*(\d+)\s*(ms|milli|millis|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h)?\s*$")
_UNIT_SECONDS = {None: 0.001, "ms": 0.001, "milli": 0.001, "millis": 0.001, "s": 1, "sec": 1, "secs": 1,
                 "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
                 "h": 3600}


def flink_duration_seconds(text: str | int) -> float:
    """A Flink duration string (`2m`, `15 s`, `1minute`; a bare number is milliseconds) in seconds."""
    match = _DURATION.match(str(text))
    assert match, f"not a duration Flink parses the way this test does: {text!r}"
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]

# The example functions the image serves by default (examples/), used where the examples cannot be imported.
EXAMPLE_TYPENAMES = {"example/greeter", "com.example/user-shopping-cart", "com.example/stock"}



def example_typenames() -> set[str]:
    """The typenames the default image serves, from the examples themselves when they import."""
    try:
        sys.path.insert(0, str(REPO))
        from examples import functions  # noqa: PLC0415
    except ImportError:
        return EXAMPLE_TYPENAMES
    finally:
        sys.path.remove(str(REPO))
    return {str(t) for t in functions.functions}


def exported_series() -> set[str]:
    """The sample names the pool exports, from statefun_workers.metrics, else from docs/contracts.md."""
    try:
        from statefun_workers.metrics import FAMILIES  # noqa: PLC0415
    except ImportError:
        contract = (REPO / "docs" / "contracts.md").read_text()
        return set(re.findall(r"`(statefun_[a-z_]+)", contract))
    names = set()
    for family, (kind, _help) in FAMILIES.items():
        if kind == "counter":
            names.add(f"{family}_total")
        elif kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        else:
            names.add(family)
    return names


def promql_metric_names(query: str) -> set[str]:
    """Metric names a PromQL expression reads (identifiers followed by a selector or range)."""
    query = query.replace("<<.Series>>", "")
    return set(re.findall(r"\b(statefun_[a-z_]+)\s*[{\[]", query))


def adapter_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter" / "rules.yaml").read_text())["rules"]
    values = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter" / "values.yaml").read_text())
    assert values["rules"]["custom"] == rules, "values.yaml and rules.yaml carry different rules"
    return rules


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """bind / timeouts of statefun_workers.gunicorn_config as gunicorn reads them under this environment."""
    code = ("import json, statefun_workers.gunicorn_config as c; print(json.dumps({k: getattr(c, k) for k in "
            "('bind', 'graceful_timeout', 'keepalive', 'timeout')}))")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEFUN_", "PROMETHEUS_"))}
    full_env.update(env)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the path only exists in the pod
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env, capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
