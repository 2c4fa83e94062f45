"""Every Kubernetes object deploy/ ships validates against the Kubernetes API schema, offline.

Built-in kinds are checked strictly (unknown fields rejected) with the schemas the kubernetes-validate package
ships, for the oldest Kubernetes these manifests support (1.30: the preStop `sleep` action is on by default
from there) and the newest the package knows. Custom resources (PodMonitor, ScaledObject) have no schema
there:
their apiVersion, kind, required fields and value types are checked here, and any Kubernetes type they embed
(the HPA behaviour in a ScaledObject) is validated by wrapping it into the built-in object it comes from.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from .k8s_manifests import KUSTOMIZATIONS, REPO
from .kustomize_lite import find_kustomization, object_id, render

OLDEST_SUPPORTED = "1.30"
NEWEST_KNOWN = kubernetes_validate.latest_version()
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("keda.sh/v1alpha1", "ScaledObject")}


def _all_objects() -> list[tuple[str, dict[str, Any]]]:
    seen: dict[tuple, tuple[str, dict[str, Any]]] = {}
    for k in sorted(KUSTOMIZATIONS):
        for obj in render(REPO / k):
            seen.setdefault(object_id(obj), (k, obj))
    return list(seen.values())


OBJECTS = _all_objects()
BUILT_IN = [(k, o) for k, o in OBJECTS if (o["apiVersion"], o["kind"]) not in CUSTOM_KINDS]


def _id(item: tuple[str, dict[str, Any]]) -> str:
    k, o = item
    return f"{k}:{o['kind']}/{o['metadata']['name']}"


def validate_strictly(obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        pytest.fail(f"{name} invalid for Kubernetes {version} at {path}: {e.message}")


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, NEWEST_KNOWN])
@pytest.mark.parametrize("item", BUILT_IN, ids=_id)
def test_built_in_objects_validate_strictly(item: tuple[str, dict[str, Any]], version: str) -> None:
    validate_strictly(item[1], version)


def test_the_schemas_catch_mistakes(pool_deployment: dict[str, Any]) -> None:
    """The strict validation really rejects a misspelt field and a wrongly typed value."""
    bad = copy.deepcopy(pool_deployment)
    bad["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, OLDEST_SUPPORTED, strict=True)
    bad = copy.deepcopy(pool_deployment)
    bad["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "50"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, OLDEST_SUPPORTED, strict=True)


def test_custom_kinds_are_the_only_ones_without_a_schema() -> None:
    for _, obj in OBJECTS:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, NEWEST_KNOWN, strict=True)


# ---- custom resources --------------------------------------------------------------------------------------

# Prometheus Operator's Duration type.
PROM_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|h|m|s)", duration))


def _check_metadata(obj: dict[str, Any]) -> None:
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, set(obj)
    assert DNS_LABEL.match(obj["metadata"]["name"])
    assert all(isinstance(v, str) for v in obj["metadata"].get("labels", {}).values())


def _pod_monitors() -> list[dict[str, Any]]:
    return [o for _, o in OBJECTS if o["kind"] == "PodMonitor"]


def _scaled_objects() -> list[dict[str, Any]]:
    return [o for _, o in OBJECTS if o["kind"] == "ScaledObject"]


def test_there_are_custom_objects_to_check() -> None:
    assert _pod_monitors() and _scaled_objects()


@pytest.mark.parametrize("pm", _pod_monitors(), ids=lambda o: o["metadata"]["name"])
def test_pod_monitor_is_well_formed(pm: dict[str, Any]) -> None:
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    _check_metadata(pm)
    spec = pm["spec"]
    assert set(spec) <= {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel",
                         "podTargetLabels", "sampleLimit", "targetLimit"}, set(spec)
    # The selector is required; an empty one would scrape every pod in the namespace.
    assert spec["selector"].get("matchLabels") or spec["selector"].get("matchExpressions")
    assert spec["podMetricsEndpoints"], "no endpoint to scrape"
    for ep in spec["podMetricsEndpoints"]:
        assert set(ep) <= {"port", "portNumber", "path", "interval", "scrapeTimeout", "scheme", "honorLabels",
                           "relabelings", "metricRelabelings"}, set(ep)
        assert isinstance(ep.get("port"), str) or isinstance(ep.get("portNumber"), int)
        assert ep.get("path", "/metrics").startswith("/")
        for key in ("interval", "scrapeTimeout"):
            if key in ep:
                assert PROM_DURATION.match(ep[key]), f"{key}: {ep[key]!r}"
        if "interval" in ep and "scrapeTimeout" in ep:
            assert _seconds(ep["scrapeTimeout"]) <= _seconds(ep["interval"])


@pytest.mark.parametrize("so", _scaled_objects(), ids=lambda o: o["metadata"]["name"])
def test_scaled_object_is_well_formed(so: dict[str, Any]) -> None:
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    _check_metadata(so)
    spec = so["spec"]
    assert set(spec) <= {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                         "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced",
                         "triggers"}, set(spec)
    ref = spec["scaleTargetRef"]
    assert set(ref) <= {"apiVersion", "kind", "name", "envSourceContainerName"} and ref["name"]
    for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec.get(key, 0), int) and spec.get(key, 0) >= 0
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["triggers"]
    for trigger in spec["triggers"]:
        assert set(trigger) <= {"type", "name", "metadata", "metricType", "authenticationRef",
                                "useCachedMetrics"}, set(trigger)
        assert trigger["metricType"] in {"AverageValue", "Value", "Utilization"}
        # KEDA's metadata is a map of strings: a bare number (threshold: 0.7) is rejected by the CRD.
        assert all(isinstance(v, str) for v in trigger["metadata"].values()), trigger["metadata"]
        if trigger["type"] == "prometheus":
            assert {"serverAddress", "query", "threshold"} <= set(trigger["metadata"])
            float(trigger["metadata"]["threshold"])
        if trigger["type"] in {"cpu", "memory"}:
            assert trigger["metricType"] in {"Utilization", "AverageValue"}
            float(trigger["metadata"]["value"])
    # The embedded HPA behaviour is the Kubernetes type: validate it inside a real HPA.
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    if behavior is not None:
        validate_strictly({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "probe"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ref["name"]},
                     "maxReplicas": spec["maxReplicaCount"], "behavior": behavior},
        }, OLDEST_SUPPORTED)


# ---- no stray manifests ------------------------------------------------------------------------------------

# YAML under deploy/k8s and deploy/statefun that is not a Kubernetes object applied by a kustomization.
NOT_OBJECTS = {
    "deploy/k8s/prometheus-adapter/values.yaml",  # Helm values
    "deploy/k8s/prometheus-adapter/rules.yaml",  # the adapter's config, generated into a ConfigMap
    "deploy/statefun/module.yaml",  # StateFun module, generated into a ConfigMap
}


def _referenced_files() -> set[str]:
    refs = set()
    for k in KUSTOMIZATIONS:
        directory = REPO / k
        kfile = find_kustomization(directory)
        refs.add(str(kfile.relative_to(REPO)))
        spec = yaml.safe_load(kfile.read_text())
        paths = [r for r in spec.get("resources", [])] + [p["path"] for p in spec.get("patches", [])]
        for gen in spec.get("configMapGenerator", []):
            paths += [f.partition("=")[2] or f for f in gen.get("files", [])]
        for p in paths:
            target = (directory / p).resolve()
            if target.is_file():
                refs.add(str(target.relative_to(REPO)))
    return refs


def test_every_manifest_is_applied_by_some_kustomization() -> None:
    files = {str(p.relative_to(REPO)) for d in ("deploy/k8s", "deploy/statefun")
             for p in (REPO / d).rglob("*.y*ml")}
    stray = files - _referenced_files() - NOT_OBJECTS
    assert not stray, f"YAML files no kustomization applies: {sorted(stray)}"


def test_generated_config_files_are_referenced() -> None:
    assert NOT_OBJECTS - {"deploy/k8s/prometheus-adapter/values.yaml"} <= _referenced_files()
    assert all(Path(REPO / f).is_file() for f in NOT_OBJECTS)
