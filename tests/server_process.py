"""The real server: ``gunicorn -c gunicorn.conf.py app`` on a free loopback port, as the tests of every folder
start it (the server's own, the runtime's, the installed package's, the TLS manifests').

Each server runs in its own process group, which teardown always kills (SIGTERM, then SIGKILL to the whole
group), so a failing test never leaves workers behind. Readiness is polled, never slept for.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import REPO, free_port

E2E_DIR = REPO / "tests" / "server"
"""Where the test-only functions (e2e_functions.py) are: on the servers' PYTHONPATH."""
SERVED = "examples,e2e_functions:functions"
"""What the shared server serves: the examples plus the test-only functions (also checks the merge)."""


def poll(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> object:
    """Wait until ``condition()`` is truthy and return it; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM a process started in its own session, then SIGKILL its whole group: nothing is left behind."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(timeout=10)


class Server:
    """A running gunicorn master and what the tests need to talk to it."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int,
                 client_tls: ssl.SSLContext | None = None, port: int | None = None) -> None:
        self.port = port or free_port()  # a given port: a pool restarted where the runtime expects it
        self.log_path = log_path
        self.workers = workers
        self.client_tls = client_tls
        """The TLS context connect() uses on the function port; None for plain HTTP."""
        self.admin_port = int(env["STATEFUN_ADMIN_PORT"]) if env.get("STATEFUN_ADMIN_PORT") else None
        binds = [f"127.0.0.1:{p}" for p in (self.port, self.admin_port) if p is not None]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEFUN_", "WEB_CONCURRENCY"))}
        full_env.update({
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "STATEFUN_FUNCTIONS": SERVED,
            "PYTHONPATH": os.pathsep.join([str(E2E_DIR), str(REPO)]),
            "PROMETHEUS_MULTIPROC_DIR": str(log_path.parent / "prom"),
        })
        full_env.update(env)
        self._log = open(log_path, "wb")
        # NOTE: -b on the command line overrides the config's 0.0.0.0 binds: the tests listen on loopback only.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *(a for b in binds for a in ("-b", b)),
             "app"],
            cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    # --- process control ---------------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until every worker has started its app and the port answers."""
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
            return len(self.worker_pids()) == self.workers and \
                self.log().count("Application startup complete") >= self.workers and self._answers()
        poll(ready, timeout)

    def _answers(self) -> bool:
        conn = self.connect(admin=self.admin_port is not None)
        try:
            return self.get("/healthz", conn)[0] == 200
        except OSError:
            return False
        finally:
            conn.close()

    def worker_pids(self) -> set[int]:
        """The master's live children (the workers), from /proc."""
        pids = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                pids.add(int(entry))
        return pids

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        try:
            stop_group(self.proc)
        finally:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        """The JSON log lines (every line the server writes should be one)."""
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    # --- HTTP --------------------------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0, admin: bool = False) -> http.client.HTTPConnection:
        """A connection to the function port (over TLS with ``client_tls``), or to the plain admin port."""
        if admin:
            assert self.admin_port is not None
            return http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        if self.client_tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.client_tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def post(self, body: bytes, path: str = "/statefun", conn: http.client.HTTPConnection | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        own = conn is None
        conn = conn or self.connect()
        try:
            conn.request("POST", path, body=body,
                         headers={"Content-Type": "application/octet-stream", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            if own:
                conn.close()

    def get(self, path: str, conn: http.client.HTTPConnection | None = None,
            method: str = "GET") -> tuple[int, http.client.HTTPMessage, bytes]:
        own = conn is None
        conn = conn or self.connect()
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            if own:
                conn.close()
