"""The HTTPS variant (deploy/k8s/overlays/tls, deploy/statefun-tls) agrees with the base, the server and itself.

Each check names a way the TLS variant breaks silently in a cluster: a probe the kubelet cannot pass (it has no
client certificate), a scrape Prometheus cannot make, a setting pointing outside the mounted Secret, a module
key the StateFun runtime ignores, or a module that drifted from the plain one in more than TLS. The last test
runs the pool with the overlay's own environment (certificates made by scripts/make-certs.sh in place of the
Secret) and calls it the way the probes, the PodMonitor and the TLS module say.
"""

from __future__ import annotations

import http.client
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .k8s_manifests import (
    DEPLOY,
    POOL_NAME,
    REPO,
    container,
    env_of,
    example_typenames,
    find,
    find_all,
    gunicorn_settings,
)
from .kustomize_lite import object_id

OVERLAY = "deploy/k8s/overlays/tls"
RUNTIME = "deploy/statefun-tls"
FUNCTIONS_SECRET = "statefun-functions-tls"
RUNTIME_SECRET = "statefun-runtime-tls"
# The async transport's keys in StateFun 3.3 (statefun-flink-core, nettyclient/NettyRequestReplySpec.java).
TRANSPORT_KEYS = {"type", "call", "connect", "pool_ttl", "pool_size", "payload_max_bytes", "timeouts",
                  "trust_cacerts", "client_cert", "client_key", "client_key_password"}
TLS_TRANSPORT_KEYS = {"trust_cacerts", "client_cert", "client_key"}
# Which file of scripts/make-certs.sh each Secret key holds (the commands in docs/tls.md).
SECRET_FILES = {
    FUNCTIONS_SECRET: {"tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt"},
    RUNTIME_SECRET: {"tls.crt": "client.crt", "tls.key": "client.key", "ca.crt": "ca.crt"},
}


@pytest.fixture(scope="module")
def tls_objects(rendered) -> list[dict[str, Any]]:
    return rendered[OVERLAY]


@pytest.fixture(scope="module")
def tls_container(tls_objects) -> dict[str, Any]:
    return container(find(tls_objects, "Deployment", POOL_NAME))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which("openssl"), "openssl is needed (scripts/install-system-deps.sh installs it)"
    directory = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(REPO / "scripts" / "make-certs.sh"), str(directory)], check=True,
                   capture_output=True, timeout=60)
    return directory


def secret_files(deployment: dict[str, Any], c: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every file path the container sees from a Secret volume -> (secret name, key)."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    files = {}
    for mount in c.get("volumeMounts", []):
        secret = volumes[mount["name"]].get("secret")
        if secret is not None:
            assert mount.get("readOnly") is True
            for key in SECRET_FILES[secret["secretName"]]:
                files[str(PurePosixPath(mount["mountPath"]) / key)] = (secret["secretName"], key)
    return files


def local_env(tls_objects: list[dict[str, Any]], certs: Path) -> dict[str, str]:
    """The overlay container's environment with each Secret path replaced by the file made for it here."""
    deployment = find(tls_objects, "Deployment", POOL_NAME)
    c = container(deployment)
    mounted = secret_files(deployment, c)
    env = env_of(c)
    for name, value in env.items():
        if name.startswith("STATEFUN_TLS_") and name.endswith("_FILE"):
            assert value in mounted, f"{name}={value} is not a file of a mounted Secret"
            secret, key = mounted[value]
            env[name] = str(certs / SECRET_FILES[secret][key])
    return env


def port_number(c: dict[str, Any], port: int | str) -> int:
    return port if isinstance(port, int) else next(p["containerPort"] for p in c["ports"] if p["name"] == port)


# ---- the pool overlay --------------------------------------------------------------------------------------

def test_the_overlay_changes_only_the_deployment_network_policy_and_pod_monitor(base, tls_objects) -> None:
    ours = {object_id(o): o for o in tls_objects}
    theirs = {object_id(o): o for o in base}
    assert ours.keys() == theirs.keys()
    changed = {k[1] for k in ours if ours[k] != theirs[k]}
    assert changed == {"Deployment", "NetworkPolicy", "PodMonitor"}


def test_the_overlay_settings_load_with_real_certificates(tls_objects, tls_container, certs) -> None:
    from statefun_workers.settings import Settings  # noqa: PLC0415
    from statefun_workers.tls import server_context  # noqa: PLC0415

    contract = (REPO / "docs" / "contracts.md").read_text()
    for name in env_of(tls_container):
        assert f"`{name}`" in contract, f"{name} is not a documented server variable"
    settings = Settings.from_env(local_env(tls_objects, certs))
    assert settings.admin_port == port_number(tls_container, "admin")
    assert settings.port == port_number(tls_container, "http")
    assert settings.tls_require_client_cert is True
    context = server_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED


def test_probes_and_scrapes_use_the_plain_admin_port(tls_objects, tls_container) -> None:
    admin = int(env_of(tls_container)["STATEFUN_ADMIN_PORT"])
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = tls_container[kind]["httpGet"]
        assert port_number(tls_container, get["port"]) == admin, kind
        assert get.get("scheme", "HTTP") == "HTTP", "the kubelet has no client certificate"
    (endpoint,) = find(tls_objects, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert port_number(tls_container, endpoint["port"]) == admin
    assert endpoint.get("scheme", "http") == "http" and endpoint["path"] == "/metrics"
    # The Service carries only the function port: batches never reach the admin port through it.
    (service_port,) = find(tls_objects, "Service", POOL_NAME)["spec"]["ports"]
    assert port_number(tls_container, service_port["targetPort"]) == int(env_of(tls_container)["PORT"])


def test_network_policy_gives_each_caller_one_port(tls_objects, tls_container) -> None:
    allowed: dict[str, set[int]] = {}
    for rule in find(tls_objects, "NetworkPolicy")["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports")
        for peer in rule["from"]:
            name = peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            allowed.setdefault(name, set()).update(port_number(tls_container, p["port"]) for p in rule["ports"])
    env = env_of(tls_container)
    assert allowed == {"statefun-runtime": {int(env["PORT"])}, "prometheus": {int(env["STATEFUN_ADMIN_PORT"])}}


def test_gunicorn_binds_both_ports(tls_objects, certs) -> None:
    env = local_env(tls_objects, certs)
    found = gunicorn_settings(env)
    assert found is not None
    assert set(found["bind"]) == {f"0.0.0.0:{env['PORT']}", f"0.0.0.0:{env['STATEFUN_ADMIN_PORT']}"}


# ---- the runtime's side ------------------------------------------------------------------------------------

def components(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


@pytest.fixture(scope="module")
def tls_module() -> list[dict[str, Any]]:
    return components((DEPLOY / "statefun-tls" / "module.yaml").read_text())


def test_the_tls_module_is_the_plain_one_plus_tls(module_components, tls_module) -> None:
    assert len(tls_module) == len(module_components)
    for plain, tls in zip(module_components, tls_module, strict=True):
        if plain["kind"] != "io.statefun.endpoints.v2/http":
            assert tls == plain
            continue
        transport = tls["spec"]["transport"]
        assert set(transport) <= TRANSPORT_KEYS and TLS_TRANSPORT_KEYS <= set(transport)
        assert transport["type"] == "io.statefun.transports.v1/async", "only the async transport has TLS keys"
        assert tls["spec"]["urlPathTemplate"] == plain["spec"]["urlPathTemplate"].replace("http://", "https://")
        expected = {**plain["spec"], "urlPathTemplate": tls["spec"]["urlPathTemplate"],
                    "transport": {**plain["spec"]["transport"], **{k: transport[k] for k in TLS_TRANSPORT_KEYS}}}
        assert tls["spec"] == expected


def test_the_runtime_reads_its_tls_files_from_its_mounted_secret(rendered, tls_module) -> None:
    objects = rendered[RUNTIME]
    module_map = find(objects, "ConfigMap", "statefun-module")
    assert components(module_map["data"]["module.yaml"]) == tls_module
    wanted = {"trust_cacerts": "ca.crt", "client_cert": "tls.crt", "client_key": "tls.key"}
    for deployment in find_all(objects, "Deployment"):
        mounted = secret_files(deployment, container(deployment))
        for spec in (c["spec"] for c in tls_module if c["kind"] == "io.statefun.endpoints.v2/http"):
            for key, secret_key in wanted.items():
                assert mounted.get(spec["transport"][key]) == (RUNTIME_SECRET, secret_key), (key, deployment)
    # Nothing else differs from the plain StateFun cluster.
    plain = {object_id(o): o for o in rendered["deploy/statefun"]}
    ours = {object_id(o): o for o in objects}
    assert ours.keys() == plain.keys()
    assert {k[1:] for k in ours if ours[k] != plain[k]} == {
        ("ConfigMap", "statefun", "statefun-module"), ("Deployment", "statefun", "statefun-master"),
        ("Deployment", "statefun", "statefun-worker")}


def test_the_server_certificate_names_the_service_the_module_calls(tls_module, tls_objects, certs) -> None:
    svc = find(tls_objects, "Service", POOL_NAME)
    text = subprocess.run(["openssl", "x509", "-in", str(certs / "server.crt"), "-noout", "-ext",
                           "subjectAltName"], check=True, capture_output=True, text=True).stdout
    for spec in (c["spec"] for c in tls_module if c["kind"] == "io.statefun.endpoints.v2/http"):
        url = urlsplit(spec["urlPathTemplate"])
        assert url.port in {p["port"] for p in svc["spec"]["ports"]}
        assert f"DNS:{url.hostname}" in text
        assert url.hostname.startswith(f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc")


# ---- the running pool --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_pool(tmp_path_factory: pytest.TempPathFactory, tls_objects, certs) -> Iterator[Any]:
    from tests.server_process import Server  # noqa: PLC0415
    from tests.support import free_port  # noqa: PLC0415

    env = local_env(tls_objects, certs)
    del env["PORT"]  # the server picks a free one
    env["STATEFUN_ADMIN_PORT"] = str(free_port())
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path_factory.mktemp("prom"))
    client = ssl.create_default_context(cafile=certs / "ca.crt")
    client.load_cert_chain(certs / "client.crt", certs / "client.key")
    server = Server(env, tmp_path_factory.mktemp("tls-pool") / "gunicorn.log", 2, client)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_the_pool_answers_the_probes_the_scrape_and_the_tls_module(tls_pool, tls_container, tls_objects,
                                                                     tls_module, certs) -> None:
    from tests.server.wire import string_arg, to_function  # noqa: PLC0415

    paths = {tls_container[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    paths.add(find(tls_objects, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["path"])
    for path in sorted(paths):
        conn = tls_pool.connect(admin=True)
        try:
            assert tls_pool.get(path, conn)[0] == 200, path
        finally:
            conn.close()
    endpoints = [c["spec"] for c in tls_module if c["kind"] == "io.statefun.endpoints.v2/http"]
    for typename in sorted(example_typenames()):
        namespace, _, name = typename.rpartition("/")
        (endpoint,) = [e for e in endpoints if e["functions"] in (typename, f"{namespace}/*")]
        path = urlsplit(endpoint["urlPathTemplate"]).path.replace("{function.name}", name)
        body = to_function(typename, "tls", [string_arg("hi")])
        assert tls_pool.post(body, path=path)[0] == 200, path
        # Without the runtime's certificate the same call is refused.
        anonymous = http.client.HTTPSConnection("127.0.0.1", tls_pool.port, timeout=10,
                                                context=ssl.create_default_context(cafile=certs / "ca.crt"))
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
            tls_pool.post(body, path=path, conn=anonymous)
        anonymous.close()
