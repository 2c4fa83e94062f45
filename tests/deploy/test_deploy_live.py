"""The manifests against a RUNNING pool: `gunicorn -c gunicorn.conf.py app`, started from the repository root
with the Deployment's own environment (only the port and the metrics directory changed for this machine),
listening on loopback.

* every probe path of the Deployment answers 200;
* the path the module's urlPathTemplate produces for each example function accepts a batch for it;
* a batch for a function the pool does not serve (yet) gets 503: the status both runtime transports retry,
  which is what makes a rolling deploy of a new function safe (docs/deploy.md);
* /metrics exports every series the autoscaler variants read.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from .k8s_manifests import REPO, adapter_rules, env_of, example_typenames, promql_metric_names

pytestmark = pytest.mark.server

STRING_TYPE = "io.statefun.types/string"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _post(port: int, path: str, body: bytes) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def _to_function(typename: str, address_id: str, text: str) -> bytes:
    from statefun_workers._proto import request_reply_pb2, types_pb2  # noqa: PLC0415

    request = request_reply_pb2.ToFunction()
    batch = request.invocation
    batch.target.namespace, _, batch.target.type = typename.rpartition("/")
    batch.target.id = address_id
    argument = batch.invocations.add().argument
    argument.typename = STRING_TYPE
    argument.has_value = True
    argument.value = types_pb2.StringWrapper(value=text).SerializeToString()
    return request.SerializeToString()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[int]:
    deployment_env = env_of(request.getfixturevalue("pool_container"))
    directory = tmp_path_factory.mktemp("pool")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEFUN_", "PROMETHEUS_", "WEB_CONC"))}
    env.update(deployment_env)
    env.update({
        "PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(directory / "prometheus"),
        # Two workers, whatever this machine's CPU count: the test checks agreement, not capacity.
        "WEB_CONCURRENCY": "2",
    })
    (directory / "prometheus").mkdir()
    log = open(directory / "gunicorn.log", "wb")  # noqa: SIM115
    # -b overrides the config's 0.0.0.0: this test listens on loopback only (PORT still picks the port).
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                log_text = (directory / "gunicorn.log").read_text()
                pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log_text}")
            try:
                if _get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the pool did not turn ready:\n{(directory / 'gunicorn.log').read_text()}")
            time.sleep(0.05)
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_probe_paths_answer_200_on_a_running_pool(pool: int, pool_container) -> None:
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    paths = {pool_container[kind]["httpGet"]["path"] for kind in kinds}
    for path in sorted(paths):
        status, _ = _get(pool, path)
        assert status == 200, path


def test_module_paths_serve_the_example_functions(pool: int, module_components) -> None:
    endpoints = [c["spec"] for c in module_components if c["kind"] == "io.statefun.endpoints.v2/http"]
    for typename in sorted(example_typenames()):
        namespace, _, name = typename.rpartition("/")
        (endpoint,) = [e for e in endpoints if e["functions"] in (typename, f"{namespace}/*")]
        path = urlsplit(endpoint["urlPathTemplate"]).path.replace("{function.name}", name)
        status, content_type, body = _post(pool, path, _to_function(typename, "deploy-test", "hi"))
        # 200 with a FromFunction (the state handshake or a full response) for a served function.
        assert status == 200, (typename, path, body[:200])
        assert content_type == "application/octet-stream"
        assert body


def test_a_function_not_deployed_yet_gets_a_retried_503(pool: int) -> None:
    body = _to_function("example/not-deployed-yet", "x", "hi")
    status, _, _ = _post(pool, "/statefun/not-deployed-yet", body)
    assert status == 503


def test_metrics_export_what_the_autoscalers_read(pool: int) -> None:
    # A batch first, so that every per-request series has been written at least once.
    _post(pool, "/statefun/greeter", _to_function("example/greeter", "metrics", "hi"))
    deadline = time.monotonic() + 15
    while True:  # both workers up and counted (the pool turns ready with the first one)
        status, body = _get(pool, "/metrics")
        assert status == 200
        if re.search(r"^statefun_worker_processes(?:\{[^}]*\})? 2(\.0)?$", body.decode(), flags=re.M) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    samples = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", body.decode(), flags=re.M))
    wanted = {"statefun_busy_seconds_total", "statefun_worker_processes"}
    for rule in adapter_rules():
        wanted |= promql_metric_names(rule["metricsQuery"])
        wanted.add(re.match(r"^'?(\w+)", rule["seriesQuery"]).group(1))
    assert wanted <= samples, wanted - samples
    workers = re.search(r"^statefun_worker_processes(?:\{[^}]*\})? (\S+)$", body.decode(), flags=re.M)
    assert workers and float(workers.group(1)) == 2
