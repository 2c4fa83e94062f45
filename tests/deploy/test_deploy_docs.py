"""docs/deploy.md names only things that exist: the kustomizations it applies, the error reason it queries."""

from __future__ import annotations

import re

from .k8s_manifests import KUSTOMIZATIONS, REPO

DOC = (REPO / "docs" / "deploy.md").read_text()


def test_every_applied_path_is_a_kustomization_and_every_kustomization_is_documented() -> None:
    applied = set(re.findall(r"kubectl apply -k (\S+?)[`\s]", DOC))
    assert applied == set(KUSTOMIZATIONS)


def test_error_reasons_named_in_the_doc_exist() -> None:
    from statefun_workers import errors

    reasons = {getattr(errors, name).reason for name in errors.__all__}
    assert set(re.findall(r'reason="(\w+)"', DOC)) <= reasons


def test_files_named_in_the_doc_exist() -> None:
    for path in set(re.findall(r"`((?:deploy|tests)/[\w./-]+)`", DOC)):
        assert (REPO / path).exists(), path
