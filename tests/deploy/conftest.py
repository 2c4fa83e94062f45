"""Fixtures of the deploy/ tests: the rendered kustomizations and the objects most checks compare."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .k8s_manifests import DEPLOY, KUSTOMIZATIONS, POOL_NAME, REPO, container, find
from .kustomize_lite import render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every kustomization, rendered."""
    return {k: render(REPO / k) for k in KUSTOMIZATIONS}


@pytest.fixture(scope="session")
def base(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["deploy/k8s/base"]


@pytest.fixture(scope="session")
def pool_deployment(base: list[dict[str, Any]]) -> dict[str, Any]:
    return find(base, "Deployment", POOL_NAME)


@pytest.fixture(scope="session")
def pool_container(pool_deployment: dict[str, Any]) -> dict[str, Any]:
    return container(pool_deployment)


@pytest.fixture(scope="session")
def module_components() -> list[dict[str, Any]]:
    """deploy/statefun/module.yaml as the runtime reads it: a stream of components, null documents skipped."""
    with (DEPLOY / "statefun" / "module.yaml").open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]
