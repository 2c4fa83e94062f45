"""A small, strict renderer for the subset of kustomize that deploy/ uses.

The tests read the manifests as Kubernetes would receive them, i.e. after `kubectl apply -k`. kubectl (with
its built-in kustomize) is not always installed, so this module renders the kustomizations itself; where
kubectl exists, a test checks that both renderings agree.

Supported, and nothing else (anything unknown raises ``Unsupported`` rather than rendering something wrong):

* ``resources``: YAML files (several documents each) and directories holding a kustomization;
* ``namespace``: set on every namespaced object, including those of the resources' kustomizations;
* ``configMapGenerator`` with ``files`` (``key=path`` or ``path``) and ``literals``, when the name hash suffix
  is disabled (``generatorOptions`` or the generator's ``options``), and ``labels`` from either; with
  ``behavior: replace`` it replaces the data of the resources' ConfigMap of that name (labels merge);
* ``patches`` given by ``path``: strategic-merge patches, matched by apiVersion group, kind and name, where
  maps merge, the lists in ``MERGE_KEYS`` merge element by element on their key (as the Kubernetes API
  declares them; new elements go first, as kustomize puts them), other lists are replaced (the API marks them
  atomic, and a custom resource's lists are replaced too), a ``null`` value removes a key, and
  ``$patch: delete`` removes the object.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# Kinds that are not namespaced, among those kustomize knows and deploy/ could use.
CLUSTER_SCOPED = frozenset({
    "Namespace", "APIService", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "IngressClass", "RuntimeClass", "Node", "ClusterIssuer", "ClusterTriggerAuthentication",
})

# The patched lists the API merges by a key instead of replacing: (kind, path without list indices) -> key.
MERGE_KEYS = {
    ("Deployment", "spec.template.spec.containers"): "name",
    ("Deployment", "spec.template.spec.containers.env"): "name",
    ("Deployment", "spec.template.spec.containers.ports"): "containerPort",
    ("Deployment", "spec.template.spec.containers.volumeMounts"): "mountPath",
    ("Deployment", "spec.template.spec.volumes"): "name",
    ("Service", "spec.ports"): "port",
}

_KNOWN_KEYS = frozenset({
    "apiVersion", "kind", "namespace", "resources", "configMapGenerator", "generatorOptions", "patches",
})


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def load_documents(path: Path) -> list[Obj]:
    """The non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def find_kustomization(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no kustomization file in {directory}")


def object_id(obj: Obj) -> tuple[str, str, str, str]:
    """(group, kind, namespace, name): how kustomize tells objects apart (the version does not count)."""
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj.get("metadata", {})
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def render(directory: str | Path) -> list[Obj]:
    """The objects `kubectl kustomize DIRECTORY` would print, in an unspecified order."""
    return _render(Path(directory).resolve(), stack=())


def _render(directory: Path, stack: tuple[Path, ...]) -> list[Obj]:
    if directory in stack:
        raise Unsupported(f"kustomization cycle through {directory}")
    kfile = find_kustomization(directory)
    spec = yaml.safe_load(kfile.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - _KNOWN_KEYS
    if unknown:
        raise Unsupported(f"{kfile}: unsupported keys {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise Unsupported(f"{kfile}: kind {spec['kind']!r} (components are not supported)")

    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(_render(target, stack + (directory,)))
        elif target.is_file():
            objects.extend(copy.deepcopy(load_documents(target)))
        else:
            raise FileNotFoundError(f"{kfile}: resource {entry!r} does not exist")

    for generated in _generate_config_maps(directory, kfile, spec):
        objects = _add_generated(objects, generated, kfile)

    for patch_entry in spec.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise Unsupported(f"{kfile}: only `patches: - path: FILE` is supported, got {patch_entry}")
        for patch in load_documents(directory / patch_entry["path"]):
            objects = _apply_patch(objects, patch, kfile)

    namespace = spec.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = namespace

    ids = [object_id(obj) for obj in objects]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"{kfile}: objects defined twice: {sorted(duplicates)}")
    return objects


def _generate_config_maps(directory: Path, kfile: Path, spec: Obj) -> list[Obj]:
    global_options = spec.get("generatorOptions", {})
    unknown = set(global_options) - {"disableNameSuffixHash", "labels"}
    if unknown:
        raise Unsupported(f"{kfile}: generatorOptions {sorted(unknown)}")
    generated = []
    for gen in spec.get("configMapGenerator", []):
        unknown = set(gen) - {"name", "files", "literals", "options", "behavior"}
        if unknown:
            raise Unsupported(f"{kfile}: configMapGenerator keys {sorted(unknown)}")
        options = {**global_options, **gen.get("options", {})}
        if not options.get("disableNameSuffixHash"):
            raise Unsupported(f"{kfile}: generated names with a hash suffix")
        data: dict[str, str] = {}
        for item in gen.get("files", []):
            key, sep, path = item.partition("=")
            if not sep:
                key, path = Path(item).name, item
            data[key] = (directory / path).read_text(encoding="utf-8")
        for item in gen.get("literals", []):
            key, _, value = item.partition("=")
            data[key] = value
        metadata: Obj = {"name": gen["name"]}
        labels = {**global_options.get("labels", {}), **gen.get("options", {}).get("labels", {})}
        if labels:
            metadata["labels"] = labels
        if gen.get("behavior", "create") not in ("create", "replace"):
            raise Unsupported(f"{kfile}: configMapGenerator behavior {gen['behavior']!r}")
        generated.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data,
                          "behavior": gen.get("behavior", "create")})
    return generated


def _add_generated(objects: list[Obj], generated: Obj, kfile: Path) -> list[Obj]:
    """Add a generated ConfigMap, or with ``behavior: replace`` put its data in place of the existing one's."""
    behavior = generated.pop("behavior")
    if behavior == "create":
        return objects + [generated]
    name = generated["metadata"]["name"]
    matches = [i for i, obj in enumerate(objects) if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == name]
    if len(matches) != 1:
        raise ValueError(f"{kfile}: configMapGenerator {name} replaces {len(matches)} ConfigMaps")
    existing = copy.deepcopy(objects[matches[0]])
    labels = {**existing["metadata"].get("labels", {}), **generated["metadata"].get("labels", {})}
    if labels:
        existing["metadata"]["labels"] = labels
    existing["data"] = generated["data"]
    return objects[:matches[0]] + [existing] + objects[matches[0] + 1:]


def _apply_patch(objects: list[Obj], patch: Obj, kfile: Path) -> list[Obj]:
    group, kind, _, name = object_id(patch)
    matches = [i for i, obj in enumerate(objects) if object_id(obj)[:2] == (group, kind)
               and obj["metadata"]["name"] == name]
    if len(matches) != 1:
        raise ValueError(f"{kfile}: patch for {kind}/{name} matches {len(matches)} objects")
    index = matches[0]
    if patch.get("$patch") == "delete":
        return objects[:index] + objects[index + 1:]
    if "$patch" in patch:
        raise Unsupported(f"{kfile}: $patch: {patch['$patch']}")
    objects = list(objects)
    objects[index] = merge(objects[index], patch, kind)
    return objects


def merge(base: Any, patch: Any, kind: str = "", path: str = "") -> Any:
    """Strategic merge: maps merge, the lists of ``MERGE_KEYS`` merge on their key, other lists are replaced;
    a null patch value removes the key."""
    key_field = MERGE_KEYS.get((kind, path))
    if key_field is not None and isinstance(base, list) and isinstance(patch, list):
        return _merge_list(base, patch, key_field, kind, path)
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(key, str) and key.startswith("$"):
            raise Unsupported(f"directive {key}")
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = merge(out[key], value, kind, f"{path}.{key}" if path else key)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(base: list[Any], patch: list[Any], key_field: str, kind: str, path: str) -> list[Any]:
    """Each patch element merges into the base element with the same key; new ones go first, in patch order
    (where kustomize puts them)."""
    out = copy.deepcopy(base)
    new = []
    for element in patch:
        if not isinstance(element, dict) or key_field not in element:
            raise Unsupported(f"{path}: a patch element without its merge key {key_field!r}")
        same = [i for i, e in enumerate(out) if e.get(key_field) == element[key_field]]
        if same:
            out[same[0]] = merge(out[same[0]], element, kind, path)
        else:
            new.append(copy.deepcopy(element))
    return new + out
