"""The worker pool's process lifecycle: replacement after SIGKILL, graceful SIGTERM, readiness drain, and
functions that block."""

from __future__ import annotations

import gc
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from statefun.kafka_egress_pb2 import KafkaProducerRecord

from tests.server_process import Server, poll

from .wire import greeter_request, parse, string_arg, to_function

pytestmark = pytest.mark.server


def _refuses_connections(server: Server) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigkilled_worker_is_replaced_and_serving_goes_on(start_server: Callable[..., Server]) -> None:
    server = start_server(workers=2)
    before = server.worker_pids()
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = poll(lambda: (lambda pids: pids if len(pids) == 2 and victim not in pids else None)(
        server.worker_pids()))
    assert isinstance(after, set) and after != before
    poll(lambda: server.log().count("Application startup complete") >= 3)
    for _ in range(6):  # fresh connections, so both workers get some
        assert server.post(greeter_request("Zed", seen=1))[0] == 200


def test_sigterm_lets_an_in_flight_batch_finish(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server = start_server(workers=2, STATEFUN_GRACEFUL_TIMEOUT="10")
    marker = tmp_path / "slow.started"
    conn = server.connect()
    try:
        conn.request("POST", "/statefun", body=to_function("test/slow", "s1", [string_arg(f"{marker} 1.5")]),
                     headers={"Content-Type": "application/octet-stream"})
        poll(marker.exists)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        # The pool stops accepting at once, while the batch is still running...
        poll(lambda: _refuses_connections(server), timeout=1.0)
        # ...and the batch still gets its answer.
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert parse(resp.read()).HasField("invocation_result")
        assert time.monotonic() - started < 10
    finally:
        conn.close()
    assert server.proc.wait(timeout=10) == 0
    # A clean stop logs no fault: gunicorn's second close of the listening socket (EBADF) is filtered out.
    assert "Error while closing socket" not in server.log()


@pytest.mark.parametrize("whole_group", [False, True], ids=["master", "process-group"])
def test_drain_keeps_serving_unready_after_sigterm(start_server: Callable[..., Server], whole_group: bool) -> None:
    """Kubernetes signals the master (PID 1); systemd, by default, the whole group: the worker then gets
    SIGTERM twice (from the sender and from the master), and the second must not cut the drain short."""
    server = start_server(workers=1, STATEFUN_DRAIN_SECONDS="2", STATEFUN_GRACEFUL_TIMEOUT="2")
    assert server.get("/readyz")[0] == 200
    if whole_group:
        os.killpg(server.proc.pid, signal.SIGTERM)
    else:
        server.signal(signal.SIGTERM)
    signalled = time.monotonic()
    poll(lambda: server.get("/readyz")[0] == 503, timeout=2)
    # Throughout most of the drain, new connections are accepted: unready, yet alive and serving batches.
    while time.monotonic() - signalled < 1.2:
        assert server.get("/readyz")[0] == 503
        assert server.get("/healthz")[0] == 200
        status, _, answer = server.post(greeter_request("Drained", seen=1))
        assert status == 200 and parse(answer).HasField("invocation_result")
    # Then the worker stops accepting and the pool exits cleanly.
    poll(lambda: _refuses_connections(server), timeout=5)
    assert server.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["SIGINT", "SIGQUIT"])
def test_a_quick_stop_of_the_master_stops_the_workers_at_once(start_server: Callable[..., Server],
                                                              sig: int) -> None:
    """Ctrl-C in a terminal, or `docker run -it` with gunicorn as PID 1: the master tells its workers SIGQUIT.
    They used to serve on (uvicorn-worker's handler never reached the uvicorn server) until the master's
    SIGKILL, 32 s later with the default timeouts."""
    server = start_server(workers=2, STATEFUN_DRAIN_SECONDS="5")
    assert server.post(greeter_request("Quick", seen=1))[0] == 200
    signalled = time.monotonic()
    server.signal(sig)
    assert server.proc.wait(timeout=20) == 0
    assert time.monotonic() - signalled < 4.0  # no drain, no SIGKILL
    assert "SIGKILL" not in server.log()


def _in_flight(server: Server, typename: str, path: Path) -> object:
    """Start a blocking batch on its own connection; return the connection once the function runs."""
    conn = server.connect()
    conn.request("POST", "/statefun", body=to_function(typename, "b1", [string_arg(str(path))]),
                 headers={"Content-Type": "application/octet-stream"})
    poll(Path(f"{path}.started").exists)
    return conn


def test_blocking_function_runs_off_the_loop_only_when_flagged(start_server: Callable[..., Server],
                                                               tmp_path: Path) -> None:
    server = start_server(workers=1)

    # Flagged blocking=True: it runs on a thread, and the single worker still answers others meanwhile.
    held = tmp_path / "pool"
    conn = _in_flight(server, "test/blocking-pool", held)
    try:
        assert server.post(greeter_request("Quick", seen=1))[0] == 200
        Path(f"{held}.release").touch()
        assert conn.getresponse().status == 200  # type: ignore[attr-defined]
    finally:
        conn.close()  # type: ignore[attr-defined]

    # Not flagged: the same code stalls the worker's event loop, and every other request waits for it.
    held = tmp_path / "loop"
    conn = _in_flight(server, "test/blocking-loop", held)
    other = server.connect(timeout=1.0)
    try:
        with pytest.raises(TimeoutError):
            server.post(greeter_request("Stalled", seen=1), conn=other)
        Path(f"{held}.release").touch()
        assert conn.getresponse().status == 200  # type: ignore[attr-defined]
    finally:
        conn.close()  # type: ignore[attr-defined]
        other.close()
    assert server.post(greeter_request("Later", seen=1))[0] == 200


def _workers_gc_threshold(server: Server) -> tuple[int, ...]:
    status, _, body = server.post(to_function("test/gc-threshold", "g", [string_arg("x")]))
    assert status == 200, body
    (egress,) = parse(body).invocation_result.outgoing_egresses
    record = KafkaProducerRecord.FromString(egress.argument.value)
    return tuple(int(part) for part in record.value_bytes.decode().split(","))


@pytest.mark.parametrize(("env", "young"), [({}, 20_000), ({"STATEFUN_GC_THRESHOLD": "5000"}, 5_000)])
def test_workers_collect_the_young_generation_at_the_set_threshold(
        start_server: Callable[..., Server], env: dict[str, str], young: int) -> None:
    """The master sets it before forking; the older generations keep Python's thresholds."""
    server = start_server(workers=1, **env)
    assert _workers_gc_threshold(server) == (young, *gc.get_threshold()[1:])
