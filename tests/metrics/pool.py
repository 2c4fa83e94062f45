"""Run the real pool (``gunicorn -c gunicorn.conf.py app``) on loopback and talk to it."""

from __future__ import annotations

import http.client
import os
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from statefun.request_reply_pb2 import Address, FromFunction, ToFunction, TypedValue

from tests.support import REPO, free_port

from .scrapes import Samples, parse

HERE = Path(__file__).resolve().parent
INT_TYPENAME = "io.statefun.types/int"


def int_value(v: int) -> TypedValue:
    """An IntType value: the IntWrapper protobuf (field 1, sfixed32)."""
    return TypedValue(typename=INT_TYPENAME, has_value=True, value=b"\x0d" + struct.pack("<i", v))


def to_function(
    typename: str, values: list[int], state: dict[str, int | None] | None = None, id: str = "a"
) -> bytes:
    """A batch for ``typename``; ``state`` maps names to a value, or None for "registered but empty"."""
    namespace, _, name = typename.partition("/")
    request = ToFunction()
    batch = request.invocation
    batch.target.CopyFrom(Address(namespace=namespace, type=name, id=id))
    for state_name, value in (state or {}).items():
        persisted = batch.state.add(state_name=state_name)
        if value is not None:
            persisted.state_value.CopyFrom(int_value(value))
    for v in values:
        batch.invocations.add(argument=int_value(v))
    return request.SerializeToString()


def state_bytes(body: bytes) -> int:
    """Bytes of state values a ToFunction carries (what the worker reads)."""
    try:
        request = ToFunction.FromString(body)
    except Exception:
        return 0
    return sum(len(p.state_value.value) for p in request.invocation.state if p.HasField("state_value"))


@dataclass
class Pool:
    """A running gunicorn master, its port and its multiprocess directory."""

    process: subprocess.Popen[bytes]
    port: int
    directory: str
    log: Path
    _conns: dict[int, http.client.HTTPConnection] = field(default_factory=dict)

    def post(self, body: bytes, conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", "/statefun", body, {"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, data

    def get(self, path: str) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def scrape(self) -> Samples:
        status, body = self.get("/metrics")
        assert status == 200, body
        return parse(body.decode())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_pool(tmp: Path, workers: int = 2, env: dict[str, str] | None = None) -> Pool:
    """Start ``gunicorn -c gunicorn.conf.py app`` from the repository root and wait until it answers."""
    port = free_port()
    directory = str(tmp / "prometheus-multiproc")
    log = tmp / "gunicorn.log"
    environ = dict(os.environ)
    environ.pop("GUNICORN_PID", None)
    environ.update(
        {
            "PORT": str(port),
            "WEB_CONCURRENCY": str(workers),
            "STATEFUN_FUNCTIONS": "metrics_functions",
            "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]),
            "PROMETHEUS_MULTIPROC_DIR": directory,
            "STATEFUN_GRACEFUL_TIMEOUT": "5",
            **(env or {}),
        }
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app"],
            cwd=REPO,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    pool = Pool(process, port, directory, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if (
                pool.get("/healthz")[0] == 200
                and pool.scrape().get(("statefun_worker_processes", ()), 0) == workers
            ):
                return pool
        except OSError:
            pass
        time.sleep(0.1)
    pool.stop()
    raise RuntimeError(f"gunicorn did not come up:\n{log.read_text()}")


def from_function(body: bytes) -> FromFunction:
    return FromFunction.FromString(body)
