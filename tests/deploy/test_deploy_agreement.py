"""The manifests agree with each other and with the server they deploy.

Each test names one promise that breaks silently in a cluster if two files drift apart: a Service that selects
no pod, a probe on a path the server does not serve, a grace period that kills in-flight batches, an
autoscaler reading a metric nobody exports, a module that calls a host that does not exist.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from statefun_workers.settings import Settings

from .k8s_manifests import (
    DEPLOY,
    POOL_KUSTOMIZATIONS,
    POOL_NAME,
    REPO,
    adapter_rules,
    container,
    env_of,
    example_typenames,
    exported_series,
    find,
    find_all,
    flink_duration_seconds,
    gunicorn_settings,
    labels_match,
    promql_metric_names,
    setting,
)

# The server's routes (docs/contracts.md): what a probe or the module may name.
SERVER_GET_PATHS = {"/healthz", "/readyz", "/metrics"}
FUNCTION_PATH = re.compile(r"^/statefun(/[^/]+)?$")


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def port_number(c: dict[str, Any], port: int | str) -> int:
    """A container port given by number or by name."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == port]
    assert named, f"no container port named {port!r}"
    return named[0]


# ---- Deployment, Service, PodDisruptionBudget --------------------------------------------------------------

def test_deployment_selects_its_own_pods(pool_deployment) -> None:
    assert labels_match(pool_deployment["spec"]["selector"], pod_labels(pool_deployment))


def test_service_selects_the_pool_pods_and_no_other(base, pool_deployment, rendered) -> None:
    svc = find(base, "Service", POOL_NAME)
    assert all(pod_labels(pool_deployment).get(k) == v for k, v in svc["spec"]["selector"].items())
    for runtime in find_all(rendered["deploy/statefun"], "Deployment"):
        assert not all(pod_labels(runtime).get(k) == v for k, v in svc["spec"]["selector"].items())


def test_service_port_reaches_the_port_gunicorn_binds(base, pool_container) -> None:
    svc = find(base, "Service", POOL_NAME)
    (port,) = svc["spec"]["ports"]
    target = port_number(pool_container, port["targetPort"])
    assert target == int(setting(pool_container, "PORT"))
    assert port["port"] == target  # the module URL, the Dockerfile and the docs all say 8000


def test_gunicorn_binds_the_container_port(pool_container) -> None:
    env = env_of(pool_container)
    found = gunicorn_settings(env)
    binds = found["bind"] if isinstance(found["bind"], list) else [found["bind"]]
    port = port_number(pool_container, "http")
    # Every address, not loopback: the kubelet and the Service reach the pod on its IP.
    assert any(b in (f"0.0.0.0:{port}", f"[::]:{port}", f":{port}") for b in binds), binds


def test_settings_accept_the_deployment_environment(pool_container) -> None:
    """Every variable the Deployment sets is one the server reads, with a value it accepts."""
    env = env_of(pool_container)
    contract = (REPO / "docs" / "contracts.md").read_text()
    for name in env:
        assert f"`{name}`" in contract, f"{name} is not a documented server variable"
    parsed = Settings.from_env(env)
    assert parsed.port == int(env["PORT"])
    assert parsed.graceful_timeout == float(env["STATEFUN_GRACEFUL_TIMEOUT"])
    assert parsed.keepalive == float(env["STATEFUN_KEEPALIVE"])


def test_probes_use_the_server_paths_on_the_served_port(pool_container) -> None:
    probes = {kind: pool_container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    for kind, probe in probes.items():
        get = probe["httpGet"]
        assert get["path"] in SERVER_GET_PATHS - {"/metrics"}, kind
        assert port_number(pool_container, get["port"]) == int(setting(pool_container, "PORT")), kind
    # Readiness must be the endpoint that turns 503 while draining; liveness must not (a draining pool lives).
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_liveness_outlasts_gunicorn_s_own_worker_timeout(pool_container) -> None:
    """gunicorn replaces a stuck worker after STATEFUN_TIMEOUT; the kubelet must not kill the pod before."""
    live = pool_container["livenessProbe"]
    window = live["periodSeconds"] * live["failureThreshold"]
    assert window >= float(setting(pool_container, "STATEFUN_TIMEOUT"))


def test_grace_period_exceeds_pre_stop_plus_graceful_shutdown(pool_deployment, pool_container) -> None:
    pre_stop = pool_container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        pause = pre_stop["sleep"]["seconds"]
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        pause = float(command[1])
    assert pause >= 5, "too short for kube-proxy everywhere to drop the pod before it stops accepting"
    found = gunicorn_settings(env_of(pool_container))
    if found is not None:
        # gunicorn_config's graceful_timeout already includes the drain and its own margin.
        shutdown = float(found["graceful_timeout"])
    else:
        shutdown = float(setting(pool_container, "STATEFUN_DRAIN_SECONDS")) + float(
            setting(pool_container, "STATEFUN_GRACEFUL_TIMEOUT"))
    grace = pool_deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pause + shutdown, (grace, pause, shutdown)


def test_rollouts_never_reduce_capacity(pool_deployment) -> None:
    strategy = pool_deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%")
    assert "replicas" not in pool_deployment["spec"], "the autoscaler owns replicas"


def test_pod_disruption_budget_covers_the_pool_and_leaves_one_pod(base, pool_deployment) -> None:
    pdb = find(base, "PodDisruptionBudget")
    assert labels_match(pdb["spec"]["selector"], pod_labels(pool_deployment))
    hpa = find(base, "HorizontalPodAutoscaler")
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]


def test_resources_make_whole_cores_for_the_workers(pool_container) -> None:
    res = pool_container["resources"]
    for key in ("cpu", "memory"):
        assert key in res["requests"] and key in res["limits"]
    assert res["requests"] == res["limits"], "Guaranteed QoS"
    # The pool runs one worker per core of the CPU quota: a fractional limit would leave a core half used.
    assert re.fullmatch(r"[1-9][0-9]*", str(res["limits"]["cpu"])), res["limits"]["cpu"]
    assert "WEB_CONCURRENCY" not in env_of(pool_container), "workers follow the CPU limit"


# ---- security ----------------------------------------------------------------------------------------------

def test_pool_runs_non_root_read_only_without_privileges(pool_deployment, pool_container) -> None:
    pod = pool_deployment["spec"]["template"]["spec"]
    psc, csc = pod["securityContext"], pool_container["securityContext"]
    assert psc["runAsNonRoot"] is True and csc.get("runAsNonRoot", True) is True
    assert psc["runAsUser"] > 0 and psc.get("runAsGroup", 1) > 0
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc.get("privileged", False) is False
    assert csc["capabilities"]["drop"] == ["ALL"] and not csc["capabilities"].get("add")
    # The rest of Pod Security's "restricted" profile.
    assert psc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected", "downwardAPI",
                                          "persistentVolumeClaim", "ephemeral", "csi"}
    assert pod["automountServiceAccountToken"] is False


def test_image_user_is_the_pod_user(pool_deployment) -> None:
    users = re.findall(r"^USER\s+(\S+)", (REPO / "Dockerfile").read_text(), flags=re.M)
    uid, _, gid = users[-1].partition(":")
    psc = pool_deployment["spec"]["template"]["spec"]["securityContext"]
    assert int(uid) == psc["runAsUser"] and int(gid) == psc["runAsGroup"]


def test_metrics_directory_is_an_in_memory_volume(pool_deployment, pool_container) -> None:
    directory = env_of(pool_container)["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in pool_container["volumeMounts"]}
    assert directory in mounts, "PROMETHEUS_MULTIPROC_DIR must be a mounted volume (the root is read-only)"
    assert not [m for m in pool_container["volumeMounts"]
                if m["mountPath"] == directory and m.get("readOnly")]
    volumes = {v["name"]: v for v in pool_deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[directory]]["emptyDir"]["medium"] == "Memory"


def test_tmp_is_writable(pool_container) -> None:
    assert "/tmp" in {m["mountPath"] for m in pool_container["volumeMounts"]}


# ---- NetworkPolicy -----------------------------------------------------------------------------------------

def _policy_rules(base) -> list[dict[str, Any]]:
    policy = find(base, "NetworkPolicy")
    assert "Ingress" in policy["spec"]["policyTypes"]
    return policy["spec"]["ingress"]


def test_network_policy_applies_to_the_pool(base, pool_deployment) -> None:
    assert labels_match(find(base, "NetworkPolicy")["spec"]["podSelector"], pod_labels(pool_deployment))


def test_network_policy_opens_only_the_function_port_to_named_peers(base, pool_container) -> None:
    http = int(setting(pool_container, "PORT"))
    for rule in _policy_rules(base):
        assert rule.get("from"), "a rule without `from` admits everyone"
        assert rule.get("ports"), "a rule without `ports` opens every port"
        for port in rule["ports"]:
            assert port_number(pool_container, port["port"]) == http
        for peer in rule["from"]:
            assert "ipBlock" not in peer
            assert peer.get("podSelector", {}).get("matchLabels"), "a peer must name its pods"


def test_network_policy_lets_the_statefun_workers_call(base, rendered, pool_deployment) -> None:
    """The runtime's TaskManagers make every call to the pool; their pods must match a peer of the policy."""
    worker = find(rendered["deploy/statefun"], "Deployment", "statefun-worker")
    same_namespace_peers = [peer for rule in _policy_rules(base) for peer in rule["from"]
                            if "namespaceSelector" not in peer]
    assert any(labels_match(p["podSelector"], pod_labels(worker)) for p in same_namespace_peers)
    # ...and not just anybody: the pool's own pods (and so any pod with an unrelated label set) do not match.
    assert not any(labels_match(p["podSelector"], pod_labels(pool_deployment)) for p in same_namespace_peers)


def test_network_policy_lets_prometheus_scrape_the_monitored_port(base, pool_container) -> None:
    prometheus = {"namespace": {"kubernetes.io/metadata.name": "monitoring"},
                  "pod": {"app.kubernetes.io/name": "prometheus"}}
    scrape_ports = {port_number(pool_container, ep["port"])
                    for ep in find(base, "PodMonitor")["spec"]["podMetricsEndpoints"]}
    allowed = set()
    for rule in _policy_rules(base):
        for peer in rule["from"]:
            if "namespaceSelector" in peer \
                    and labels_match(peer["namespaceSelector"], prometheus["namespace"]) \
                    and labels_match(peer["podSelector"], prometheus["pod"]):
                allowed |= {port_number(pool_container, p["port"]) for p in rule["ports"]}
    assert scrape_ports and scrape_ports <= allowed


def test_pod_monitor_scrapes_the_pool_metrics_path(base, pool_deployment, pool_container) -> None:
    pm = find(base, "PodMonitor")
    assert labels_match(pm["spec"]["selector"], pod_labels(pool_deployment))
    for ep in pm["spec"]["podMetricsEndpoints"]:
        assert port_number(pool_container, ep["port"]) == int(setting(pool_container, "PORT"))
        assert ep["path"] == "/metrics"


# ---- autoscaling -------------------------------------------------------------------------------------------







@pytest.mark.parametrize("kustomization", POOL_KUSTOMIZATIONS)
def test_autoscaler_targets_the_deployment(rendered, kustomization: str) -> None:
    objects = rendered[kustomization]
    deployment = find(objects, "Deployment", POOL_NAME)
    (scaler,) = find_all(objects, "HorizontalPodAutoscaler") + find_all(objects, "ScaledObject")
    ref = scaler["spec"]["scaleTargetRef"]
    assert (ref.get("apiVersion", "apps/v1"), ref.get("kind", "Deployment"), ref["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"])
    spec = scaler["spec"]
    low = spec.get("minReplicas", spec.get("minReplicaCount"))
    assert low >= 2, "one pod alone cannot be drained or evicted without an outage"
    assert spec.get("maxReplicas", spec.get("maxReplicaCount")) > low
    behavior = spec.get("behavior") or spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_cpu_target_is_relative_to_a_cpu_request(base, pool_container) -> None:
    hpa = find(base, "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in pool_container["resources"]["requests"]


def test_adapter_hpa_scales_on_a_metric_the_adapter_serves_from_metrics_the_pool_exports(rendered) -> None:
    hpa = find(rendered["deploy/k8s/overlays/prometheus-adapter"], "HorizontalPodAutoscaler")
    pods_metrics = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metrics
    served = {}
    for rule in adapter_rules():
        series = re.match(r"^'?(\w+)", rule["seriesQuery"]).group(1)
        name = re.sub(rule["name"]["matches"], rule["name"]["as"], series)
        served[name] = rule
        assert {"namespace", "pod"} <= set(rule["resources"]["overrides"]), "per-pod metric needs pod mapping"
    exported = exported_series()
    for metric in pods_metrics:
        rule = served[metric["metric"]["name"]]
        series = re.match(r"^'?(\w+)", rule["seriesQuery"]).group(1)
        assert series in exported
        assert promql_metric_names(rule["metricsQuery"]) <= exported
        # A utilisation (0..1): the target must be a fraction below 1.
        target = metric["target"]["averageValue"]
        value = int(target[:-1]) / 1000 if str(target).endswith("m") else float(target)
        assert 0 < value < 1


def test_keda_query_reads_metrics_the_pool_exports(rendered) -> None:
    so = find(rendered["deploy/k8s/overlays/keda"], "ScaledObject")
    exported = exported_series()
    prometheus = [t for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    assert prometheus
    for trigger in prometheus:
        names = promql_metric_names(trigger["metadata"]["query"])
        assert {"statefun_busy_seconds_total", "statefun_worker_processes"} <= names <= exported
        assert f'namespace="{so["metadata"]["namespace"]}"' in trigger["metadata"]["query"]
        assert f'pod=~"{POOL_NAME}-.+"' in trigger["metadata"]["query"]
        # The query is the whole pool's utilisation, so the HPA must compare it as a Value, not per pod.
        assert trigger["metricType"] == "Value" and 0 < float(trigger["metadata"]["threshold"]) < 1


def test_the_utilisation_signal_is_the_one_the_metrics_issue_defines() -> None:
    """rate(statefun_busy_seconds_total) / statefun_worker_processes, in both variants."""
    shape = re.compile(r"rate\(\s*(<<\.Series>>|statefun_busy_seconds_total)\{[^}]*\}\[1m\]\)\s*\)"
                       r"(\s*by \(<<\.GroupBy>>\))?\s*/\s*sum\(\s*statefun_worker_processes\{")
    for rule in adapter_rules():
        assert shape.search(rule["metricsQuery"]), rule["metricsQuery"]
    so = yaml.safe_load((DEPLOY / "k8s" / "overlays" / "keda" / "scaledobject.yaml").read_text())
    assert shape.search(so["spec"]["triggers"][0]["metadata"]["query"])


# ---- the StateFun module -----------------------------------------------------------------------------------

def endpoints(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["spec"] for c in components if c["kind"] == "io.statefun.endpoints.v2/http"]


def test_module_is_in_the_component_format(module_components) -> None:
    assert module_components
    for component in module_components:
        assert set(component) == {"kind", "spec"}, "component format: kind + spec, no legacy `version`"
    assert endpoints(module_components)


def test_module_endpoints_call_the_pool_service(module_components, base, pool_container) -> None:
    svc = find(base, "Service", POOL_NAME)
    dns_names = {f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local",
                 f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"}
    service_ports = {p["port"] for p in svc["spec"]["ports"]}
    for spec in endpoints(module_components):
        url = urlsplit(spec["urlPathTemplate"])
        assert url.scheme == "http"
        assert url.hostname in dns_names
        assert url.port in service_ports
        # {function.name} is the only placeholder the runtime substitutes.
        assert set(re.findall(r"\{[^}]*\}", url.path)) <= {"{function.name}"}
        for typename in example_typenames():
            path = url.path.replace("{function.name}", typename.rpartition("/")[2])
            assert FUNCTION_PATH.match(path), path


def test_module_routes_every_example_function_and_only_valid_patterns(module_components) -> None:
    patterns = [spec["functions"] for spec in endpoints(module_components)]
    for pattern in patterns:
        namespace, _, name = pattern.rpartition("/")
        assert namespace and "*" not in namespace, pattern
        assert name == "*" or "*" not in name, pattern
    for typename in example_typenames():
        assert any(fnmatchcase(typename, p) for p in patterns), f"no endpoint serves {typename}"


def test_module_ingresses_target_bound_functions_and_egresses_are_declared(module_components) -> None:
    typenames = example_typenames()
    for c in module_components:
        if c["kind"] == "io.statefun.kafka.v1/ingress":
            for topic in c["spec"]["topics"]:
                assert set(topic["targets"]) <= typenames, topic
    declared = {c["spec"]["id"] for c in module_components if c["kind"].endswith("/egress")}
    used = set()
    for source in (REPO / "examples").glob("*.py") if (REPO / "examples").is_dir() else []:
        used |= set(re.findall(r'^EGRESS\s*=\s*"([^"]+)"', source.read_text(), flags=re.M))
    assert used <= declared, f"egresses the examples use but the module does not declare: {used - declared}"


def test_transport_timeouts_fit_the_pool_settings(module_components, pool_deployment, pool_container) -> None:
    pre_stop = pool_container["lifecycle"]["preStop"]["sleep"]["seconds"]
    worker_timeout = float(setting(pool_container, "STATEFUN_TIMEOUT"))
    graceful = float(setting(pool_container, "STATEFUN_GRACEFUL_TIMEOUT")) + float(
        setting(pool_container, "STATEFUN_DRAIN_SECONDS"))
    keepalive = float(setting(pool_container, "STATEFUN_KEEPALIVE"))
    max_request = int(setting(pool_container, "STATEFUN_MAX_REQUEST_BYTES"))
    for spec in endpoints(module_components):
        transport = spec["transport"]
        assert transport["type"] == "io.statefun.transports.v1/async"
        assert "timeouts" not in transport, "a `timeouts` object overrides call/connect"
        call = flink_duration_seconds(transport["call"])
        connect = flink_duration_seconds(transport["connect"])
        pool_ttl = flink_duration_seconds(transport["pool_ttl"])
        # A worker stuck past gunicorn's timeout is killed and the batch retried: the budget must allow it,
        # with time left for the retry; likewise for a pod going through preStop and graceful shutdown.
        assert call > worker_timeout + connect
        assert call > pre_stop + graceful + connect
        assert 0 < connect < call
        # The runtime keeps a pooled connection up to pool_ttl + 3 s: the server must not close it first.
        assert pool_ttl + 3 < keepalive
        assert transport["payload_max_bytes"] >= max_request
        assert spec.get("maxNumBatchRequests", 1000) > 0


def test_module_is_mounted_where_the_runtime_loads_modules(rendered) -> None:
    objects = rendered["deploy/statefun"]
    module_map = find(objects, "ConfigMap", "statefun-module")
    assert yaml.safe_load_all(module_map["data"]["module.yaml"])
    for deployment in find_all(objects, "Deployment"):
        c = container(deployment)
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounted = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
        module_dirs = [p for p in mounted if p.startswith("/opt/statefun/modules/")]
        assert len(module_dirs) == 1 and mounted[module_dirs[0]]["configMap"]["name"] == "statefun-module"
        assert mounted["/opt/flink/conf"]["configMap"]["name"] == "statefun-flink-config"


def test_statefun_workers_reach_their_master(rendered) -> None:
    objects = rendered["deploy/statefun"]
    master_svc = find(objects, "Service", "statefun-master")
    conf = yaml.safe_load(find(objects, "ConfigMap", "statefun-flink-config")["data"]["flink-conf.yaml"])
    assert conf["jobmanager.rpc.address"] == master_svc["metadata"]["name"]
    assert conf["jobmanager.rpc.port"] in {p["port"] for p in master_svc["spec"]["ports"]}
    master = find(objects, "Deployment", "statefun-master")
    assert all(pod_labels(master).get(k) == v for k, v in master_svc["spec"]["selector"].items())
    for deployment in find_all(objects, "Deployment"):
        assert env_of(container(deployment))["MASTER_HOST"] == master_svc["metadata"]["name"]
