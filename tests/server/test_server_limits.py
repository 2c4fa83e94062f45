"""Hostile, slow and hung traffic against a real pool: every bound of ``statefun_workers.limits`` answers the
way HTTP says, is counted, and leaves the worker serving (the same pid)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.metrics.scrapes import parse
from tests.server_process import Server, poll

from .wire import greeter_request, string_arg, to_function

pytestmark = pytest.mark.server


def exchange(server: Server, data: bytes, *, timeout: float = 10.0, then: Callable[[socket.socket], None]
             | None = None) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        if then is not None:
            then(sock)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of the ``/metrics`` samples named ``name`` whose labels include ``labels``; 0 when absent."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in parse(server.get("/metrics")[2].decode()).items()
               if sample == name and wanted <= set(sample_labels))


def serves(server: Server) -> None:
    assert server.post(greeter_request("after"))[0] == 200


def no_tracebacks(server: Server) -> None:
    assert "Traceback" not in server.log()


@pytest.fixture
def one_worker(start_server: Callable[..., Server]) -> Callable[..., Server]:
    return lambda **env: start_server(workers=1, **env)


def test_a_header_block_over_the_limit_is_431_as_it_arrives(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_MAX_HEADER_BYTES="8192")
    (pid,) = server.worker_pids()
    # 4 MiB of one header value: refused once 8 KiB are in, not after the whole value was buffered.
    head = b"POST /statefun HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (4 << 20)

    def send_rest(sock: socket.socket) -> None:
        try:
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass

    response = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(head)
            send_rest(sock)
        except OSError:  # NOTE: the server may close while we are still sending: the answer is already there
            pass
        response = read_until_closed(sock)
    assert status_of(response) == 431, response[:200]
    assert b"STATEFUN_MAX_HEADER_BYTES" in response
    assert metric(server, "statefun_connections_refused_total", reason="header_too_large") == 1
    serves(server)
    assert server.worker_pids() == {pid}
    no_tracebacks(server)


def test_too_many_headers_is_431(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_MAX_HEADERS="20")
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(21))
    response = exchange(server, b"POST /statefun HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert status_of(response) == 431 and b"STATEFUN_MAX_HEADERS" in response
    serves(server)


def test_slow_silent_and_stalled_connections_are_closed_and_counted(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_HEADER_TIMEOUT="1", STATEFUN_BODY_STALL_TIMEOUT="1")
    results: dict[str, tuple[float, bytes]] = {}

    def timed(name: str, data: bytes, then: Callable[[socket.socket], None] | None = None) -> None:
        started = time.monotonic()
        response = exchange(server, data, timeout=15, then=then)
        results[name] = (time.monotonic() - started, response)

    def dribble(sock: socket.socket) -> None:  # a header byte every 0.3 s, for ever (slowloris)
        try:
            for _ in range(40):
                sock.sendall(b"a")
                time.sleep(0.3)
        except OSError:
            pass

    threads = [
        threading.Thread(target=timed, args=("silent", b"")),
        threading.Thread(target=timed, args=("partial head", b"POST /statefun HTTP/1.1\r\nHost: t\r\n")),
        threading.Thread(target=timed, args=("slowloris", b"POST /statefun HTTP/1.1\r\nX-Slow: ", dribble)),
        threading.Thread(target=timed, args=(
            "stalled body", b"POST /statefun HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"\0" * 10)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for name, (seconds, _) in results.items():
        # 1 s limits, swept twice a second; unbounded, the slowloris would dribble on for 12 s
        assert seconds < 8.0, (name, seconds)
    assert results["silent"][1] == b""  # nothing was asked: nothing is answered
    for name in ("partial head", "slowloris", "stalled body"):
        assert status_of(results[name][1]) == 408, (name, results[name][1])
    assert metric(server, "statefun_connections_refused_total", reason="header_timeout") == 3
    assert metric(server, "statefun_connections_refused_total", reason="body_stall") == 1
    serves(server)
    no_tracebacks(server)


@pytest.mark.parametrize(("framing", "piece"), [(b"Content-Length: 1000", b"\0"),
                                                (b"Transfer-Encoding: chunked", b"1\r\n\0\r\n")],
                         ids=["content-length", "chunked"])
def test_a_body_dripping_in_under_the_stall_limit_is_cut_at_the_body_limit(
        one_worker: Callable[..., Server], framing: bytes, piece: bytes) -> None:
    """A piece every 0.3 s never stalls for 1 s, but the body as a whole gets 2 s; a body that comes at once
    on the same worker is served."""
    server = one_worker(STATEFUN_BODY_STALL_TIMEOUT="1", STATEFUN_BODY_TIMEOUT="2")

    def drip(sock: socket.socket) -> None:
        try:
            for _ in range(60):  # 18 s of body, were it not cut
                sock.sendall(piece)
                time.sleep(0.3)
        except OSError:
            pass

    started = time.monotonic()
    response = exchange(server, b"POST /statefun HTTP/1.1\r\nHost: t\r\n" + framing + b"\r\n\r\n",
                        timeout=20, then=drip)
    assert 2.0 <= time.monotonic() - started < 6.0
    assert status_of(response) == 408 and b"STATEFUN_BODY_TIMEOUT" in response, response
    assert metric(server, "statefun_connections_refused_total", reason="body_timeout") == 1
    assert metric(server, "statefun_connections_refused_total", reason="body_stall") == 0
    # a body that never arrived was no batch: not an error, not a latency sample, not a log line of its own
    assert metric(server, "statefun_batches_total") == 0
    assert metric(server, "statefun_batch_duration_seconds_count") == 0
    assert metric(server, "statefun_requests_in_flight") == 0
    assert "batch refused" not in server.log()
    serves(server)
    no_tracebacks(server)


def test_connections_over_the_limit_are_refused_with_503_not_reset(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_MAX_CONNECTIONS="4")
    held = [server.connect() for _ in range(4)]
    try:
        for conn in held:  # each one is open and served (keep-alive)
            assert server.post(greeter_request("held"), conn=conn)[0] == 200
        response = exchange(server, b"")
        assert status_of(response) == 503 and b"STATEFUN_MAX_CONNECTIONS" in response
        held[0].close()  # make room for the scrape's own connection
        assert poll(lambda: metric(server, "statefun_connections_refused_total", reason="too_many_connections"))
    finally:
        for conn in held:
            conn.close()
    serves(server)


def test_expect_100_continue_over_the_limit_is_413_before_continue(server: Server) -> None:
    response = exchange(server, b"POST /statefun HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                                b"Content-Length: 33554432\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 413 "), response[:100]
    assert b"100 Continue" not in response


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"gzip", b"identity"])
def test_transfer_codings_other_than_chunked_are_501(server: Server, coding: bytes) -> None:
    response = exchange(server, b"POST /statefun HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + coding
                        + b"\r\n\r\n0\r\n\r\n")
    assert status_of(response) in (400, 501), response[:100]  # llhttp itself refuses a coding without chunked
    if b"chunked" in coding:
        assert status_of(response) == 501
    serves(server)


@pytest.mark.parametrize(("line", "status"), [(b"GET / HTTP/0.9", 505), (b"GET / HTTP/2.0", 505),
                                              (b"POST /statefun HTTP/3.0", 400)])  # llhttp refuses 3.0 itself
def test_unsupported_versions_are_505_or_400_without_a_traceback(server: Server, line: bytes, status: int) -> None:
    response = exchange(server, line + b"\r\nHost: t\r\n\r\n")
    assert status_of(response) == status, response[:100]
    serves(server)
    no_tracebacks(server)


def test_the_exception_text_is_echoed_only_when_asked(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_EXPOSE_ERRORS="1")
    status, _, body = server.post(to_function("test/fail", "id-1", [string_arg("x")]))
    assert status == 500 and b"RuntimeError: secret-detail-that-must-not-leak" in body


def test_a_hung_async_batch_is_503_at_its_deadline_and_cancelled(
        one_worker: Callable[..., Server], tmp_path: Path) -> None:
    server = one_worker(STATEFUN_BATCH_TIMEOUT="1")
    marker = str(tmp_path / "hang")
    started = time.monotonic()
    status, _, body = server.post(to_function("test/hang", "h1", [string_arg(marker)]))
    assert status == 503 and b"batch_timeout" in body
    assert 0.9 < time.monotonic() - started < 5
    assert os.path.exists(marker + ".cancelled")
    assert metric(server, "statefun_errors_total", typename="test/hang", reason="batch_timeout") == 1
    assert poll(lambda: metric(server, "statefun_requests_in_flight") == 0) is not None
    serves(server)


def test_a_client_that_hangs_up_cancels_its_batch(one_worker: Callable[..., Server], tmp_path: Path) -> None:
    server = one_worker()
    marker = str(tmp_path / "gone")
    body = to_function("test/hang", "h2", [string_arg(marker)])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /statefun HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        poll(lambda: os.path.exists(marker + ".started"))
    poll(lambda: os.path.exists(marker + ".cancelled"), timeout=5)
    assert poll(lambda: metric(server, "statefun_errors_total", typename="test/hang",
                               reason="client_disconnected") == 1)
    assert metric(server, "statefun_requests_in_flight") == 0
    serves(server)


@pytest.mark.slow
def test_hung_blocking_batches_are_abandoned_counted_and_cannot_fill_the_pool(
        one_worker: Callable[..., Server], tmp_path: Path) -> None:
    server = one_worker(STATEFUN_BATCH_TIMEOUT="1", STATEFUN_BLOCKING_THREADS="1", STATEFUN_GRACEFUL_TIMEOUT="2")
    marker = str(tmp_path / "block")
    try:
        status, _, body = server.post(to_function("test/hang-blocking", "b1", [string_arg(marker)]))
        assert status == 503 and b"batch_timeout" in body and b"abandoned" in body
        assert metric(server, "statefun_blocking_abandoned_total") == 1
        assert metric(server, "statefun_blocking_threads_busy") == 1
        # The only thread is still taken: the next blocking batch is refused at once, not queued behind it.
        # NOTE: "overloaded", not "batch_timeout": refused, not queued (no wall-clock bound to trip on a busy host).
        status, _, body = server.post(to_function("test/hang-blocking", "b2", [string_arg(marker + "2")]))
        assert status == 503 and b"overloaded" in body
        serves(server)  # the event loop was never held
        # SIGTERM with the thread still hung: the worker stops within the graceful timeout, by itself.
        stopping = time.monotonic()
        server.signal(15)
        server.proc.wait(timeout=15)
        # NOTE: the proof is that the master never had to SIGKILL it; the time bound is only a backstop.
        assert time.monotonic() - stopping < 2 + 2 + 5  # graceful timeout + the master's margin + a busy host
        assert "SIGKILL" not in server.log()
    finally:
        Path(marker + ".release").touch()


def test_a_worker_holding_too_many_request_bytes_answers_503(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_MAX_BUFFERED_BYTES=str(1 << 20))
    length = 900_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as first:
        # A first body, partly sent: its whole length is held while it is read.
        first.sendall(b"POST /statefun HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % length
                      + b"\0" * 300_000)
        time.sleep(0.3)
        status, _, body = server.post(b"\0" * length)
        assert status == 503 and b"STATEFUN_MAX_BUFFERED_BYTES" in body
    assert poll(lambda: metric(server, "statefun_errors_total", reason="overloaded") >= 1)
    serves(server)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_large_bodies_are_given_back_to_the_system_after_their_batches(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_MAX_REQUEST_BYTES=str(32 << 20), STATEFUN_MAX_BUFFERED_BYTES=str(256 << 20))
    (pid,) = server.worker_pids()
    serves(server)
    before = rss_bytes(pid)
    body = b"\0" * (24 << 20)  # not a ToFunction: read whole, refused 400, freed

    def post() -> None:
        assert server.post(body)[0] == 400

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    serves(server)
    assert rss_bytes(pid) - before < 16 << 20, (before, rss_bytes(pid))  # 6 bodies of 24 MiB held at once


def test_sigterm_with_a_hung_async_batch_answers_503_and_stops_in_the_grace_period(
        one_worker: Callable[..., Server], tmp_path: Path) -> None:
    server = one_worker(STATEFUN_GRACEFUL_TIMEOUT="2")  # the batch timeout (30 s) is longer
    marker = str(tmp_path / "term")
    answer: list[tuple[int, bytes]] = []

    def post() -> None:
        status, _, body = server.post(to_function("test/hang", "t1", [string_arg(marker)]))
        answer.append((status, body))

    poster = threading.Thread(target=post)
    poster.start()
    poll(lambda: os.path.exists(marker + ".started"))
    stopping = time.monotonic()
    server.signal(15)
    server.proc.wait(timeout=15)
    poster.join(5)
    assert time.monotonic() - stopping < 2 + 2 + 5  # graceful timeout + the master's margin + a busy host
    assert answer and answer[0][0] == 503 and b"worker_stopping" in answer[0][1]
    assert os.path.exists(marker + ".cancelled")
    no_tracebacks(server)
    assert "SIGKILL" not in server.log()


def test_a_client_that_never_reads_its_answer_is_cut_off(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_BODY_STALL_TIMEOUT="1")
    body = to_function("test/big-answer", "a1", [string_arg(str(32 << 20))])
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"POST /statefun HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        # Read nothing: the answer fills the socket buffers, the worker's transport pauses, and then gives up.
        assert poll(lambda: metric(server, "statefun_connections_refused_total", reason="response_stall") == 1,
                    timeout=10)
    serves(server)
    no_tracebacks(server)


def test_a_connection_pipelining_too_many_requests_is_closed(one_worker: Callable[..., Server]) -> None:
    server = one_worker()
    (pid,) = server.worker_pids()
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    response = exchange(server, request * 5000)
    assert response.count(b"HTTP/1.1 200") <= 65  # closed at once: at most the queued ones were answered
    assert metric(server, "statefun_connections_refused_total", reason="pipeline_too_deep") == 1
    serves(server)
    assert server.worker_pids() == {pid}


def test_endless_trailers_of_a_chunked_body_are_refused(one_worker: Callable[..., Server]) -> None:
    server = one_worker(STATEFUN_MAX_HEADERS="20")
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(20_000))
    response = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(b"POST /statefun HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"1\r\n\0\r\n0\r\n" + trailers)
        except OSError:
            pass
        response = read_until_closed(sock)
    assert metric(server, "statefun_connections_refused_total", reason="too_many_headers") == 1, response[:200]
    serves(server)
