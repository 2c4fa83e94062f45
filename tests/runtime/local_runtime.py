"""The real Apache Flink StateFun runtime (runtime/: one JVM) and the pool it calls, as the runtime tests run
them; the fixtures are in conftest.py."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime import runner
from tests.server_process import Server, poll, stop_group
from tests.support import free_port

HERE = Path(__file__).resolve().parent
SERVED = "examples,runtime_functions:functions"
PLACEHOLDER = "http://functions.invalid:8000"


def http_endpoint(functions: str, url: str = PLACEHOLDER, call: str | None = None) -> str:
    """A module.yaml document routing ``functions`` (``namespace/*``) to ``url``; with ``call``, the async
    transport with that call budget, else the runtime's default transport."""
    transport = f"""
  transport:
    type: io.statefun.transports.v1/async
    call: {call}""" if call is not None else ""
    return f"""
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: {functions}
  urlPathTemplate: {url}/statefun/{{function.name}}{transport}
"""


def kafka_egress(id: str) -> str:
    """A module.yaml document declaring the Kafka egress ``id`` (the runtime's test runner captures it)."""
    return f"""
---
kind: io.statefun.kafka.v1/egress
spec:
  id: {id}
  address: kafka.invalid:9092
  deliverySemantic:
    type: at-least-once
"""


TEST_MODULE = (
    http_endpoint("runtime-test/*", call="30s")  # the test functions: a budget that outlasts a pool restart
    + http_endpoint("runtime-crash/*", call="2s")  # fails the job on purpose: a budget that runs out in the test
    + kafka_egress("runtime-test/egress"))
SESSION_SETTINGS = {
    "execution.checkpointing.interval": "1s",
    "restart-strategy": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "20",
    "restart-strategy.fixed-delay.delay": "1s",
}


def require_runner() -> None:
    """Build the runner once; without Java or Maven fail, naming them (make system-deps installs them)."""
    missing = runner.missing_tools()
    if missing:
        pytest.fail(f"the runtime tests need {' and '.join(missing)} (make system-deps installs them)", pytrace=False)
    runner.build()


class Runtime:
    """A running StateFun job (one JVM) and its HTTP ingress and egress."""

    def __init__(self, directory: Path, module: str, settings: dict[str, str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.tmpdir = directory / "tmp"
        self.tmpdir.mkdir()
        self.module_path = directory / "module.yaml"
        self.module_path.write_text(module)
        self.ingress_port, self.egress_port = free_port(), free_port()
        self.log_path = directory / "runtime.log"
        all_settings = {"runner.ingress.port": str(self.ingress_port),
                        "runner.egress.port": str(self.egress_port), **settings}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(runner.command(self.module_path, self.tmpdir, all_settings),
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_running(self, timeout: float = 90.0) -> None:
        """Wait until the job runs (the source has started), failing with the log if the JVM exits."""
        def running() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"the runtime exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status = self.status()
            except OSError:
                return False
            return status["job"] == "RUNNING" and status["starts"] >= 1
        poll(running, timeout, interval=0.2)

    def wait_exit(self, timeout: float) -> int:
        """The JVM's exit code once it has exited by itself; fails the test if it still runs after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runtime still runs after {timeout} s:\n{self.log()[-5000:]}")

    def status(self) -> dict[str, Any]:
        return json.loads(self._request(self.ingress_port, "GET", "/status")[1])  # type: ignore[no-any-return]

    def send(self, target: str, id: str, value: Any, typename: str = "runtime-test/Command") -> None:
        """Post a message to ``target`` (a function typename) and id; dicts are sent as JSON."""
        body = json.dumps(value).encode() if isinstance(value, dict) else str(value).encode()
        status, answer = self._request(self.ingress_port, "POST", f"/{target}/{id}", body,
                                       {"Content-Type": f"application/vnd.{typename}"})
        assert status == 202, (status, answer)

    def records(self, topic: str, key: str | None = None) -> list[dict[str, Any]]:
        """Every egress record of ``topic`` so far (of one key if given), oldest first."""
        status, body = self._request(self.egress_port, "GET", f"/{topic}?all")
        assert status == 200, (status, body)
        return [r for r in json.loads(body) if key is None or r["key"] == key]

    def pop(self, topic: str) -> tuple[int, bytes]:
        """The playground's read: the next record of ``topic`` not read yet (200), or 404."""
        return self._request(self.egress_port, "GET", f"/{topic}")

    def values(self, topic: str, key: str) -> list[Any]:
        """The JSON values of ``topic``'s records of ``key``."""
        return [json.loads(r["value"]) for r in self.records(topic, key)]

    def _request(self, port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        try:
            stop_group(self.proc, timeout=15)
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


class Pool:
    """The gunicorn pool the runtime calls; it can be killed and started again on the same port."""

    def __init__(self, directory: Path, shared: Path) -> None:
        self.directory = directory
        self.env = {"STATEFUN_FUNCTIONS": SERVED, "STATEFUN_GRACEFUL_TIMEOUT": "2",
                    "PYTHONPATH": os.pathsep.join([str(HERE), str(runner.REPO)]), "RUNTIME_TEST_DIR": str(shared)}
        self.starts = 0
        self.server = self._start(None)

    def _start(self, port: int | None) -> Server:
        self.starts += 1
        server = Server(self.env, self.directory / f"gunicorn-{self.starts}.log", workers=2, port=port)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def restart(self) -> None:
        """SIGKILL the whole pool (master and workers) and start a new one on the same port."""
        os.killpg(self.server.proc.pid, signal.SIGKILL)
        self.server.stop()
        self.server = self._start(self.server.port)

    def stop(self) -> None:
        self.server.stop()


def session_module(pool_url: str) -> str:
    """The shipped module.yaml plus the test functions' endpoints, every endpoint pointed at ``pool_url``."""
    return runner.rewrite_hosts(runner.SHIPPED_MODULE.read_text() + TEST_MODULE, pool_url)

def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``poll`` with a budget that suits the runtime (batches, delays and retries take their time)."""
    return poll(condition, timeout, interval=0.1)


def counts(runtime: Runtime, ids: list[str], round: int, timeout: float = 30.0) -> dict[str, int]:
    """Ask every ``runtime-test/counter`` in ``ids`` for its count, as report round ``round``, and wait for
    every answer (a record repeated by the at-least-once egress carries the same count)."""
    for id in ids:
        runtime.send("runtime-test/counter", id, {"op": "report", "round": round})
    wanted = set(ids)

    def answered() -> dict[str, int] | None:
        latest = {}
        for record in runtime.records("counts"):
            value = json.loads(record["value"])
            if record["key"] in wanted and value["round"] == round:
                latest[record["key"]] = value["count"]
        return latest if len(latest) == len(wanted) else None
    return poll(answered, timeout, interval=0.2)  # type: ignore[return-value]
