"""The worker's HTTP protocol (``statefun_workers.http_protocol``) against uvicorn's own.

Both protocols are driven in process with the same bytes, over a transport that records what it is asked to
send, and must send the same bytes and close at the same point: generated requests (pipelined, split at any
byte) and generated answers (every framing uvicorn knows, and the broken ones it refuses). Then the joining
transport (one write per answer), the keep-alive timer on a real clock, the batch body taken from the first
ASGI event (``server.BatchRequest``) or from Falcon's stream, and pipelining on a real pool.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from statefun_workers import http_protocol
from statefun_workers.http_protocol import HttpProtocol, JoinedWritesTransport
from tests.server_process import Server

from .wire import greeter_request

DATE = [(b"date", b"Sun, 29 Nov 2026 08:00:00 GMT")]


class RecordingTransport(asyncio.Transport):
    """A connection's transport: records writes, honours pause_reading, and refuses writes after close."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.reading = True

    def write(self, data: Any) -> None:
        assert not self.closing, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)


@dataclass
class Connection:
    protocol: Any
    transport: RecordingTransport
    state: ServerState

    @property
    def sent(self) -> bytes:
        return b"".join(self.transport.writes)


App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def connect(protocol_class: type[HttpToolsProtocol], app: App, keep_alive: float = 5.0,
            access_log: bool = False) -> Connection:
    """A protocol instance as uvicorn's server makes one, connected to a recording transport."""
    # NOTE: log_config=None: uvicorn leaves the process's logging set-up alone.
    config = Config(app=app, lifespan="off", proxy_headers=False, access_log=access_log, log_config=None,
                    timeout_keep_alive=keep_alive)
    config.load()
    state = ServerState()
    state.default_headers = list(DATE)
    protocol = protocol_class(config=config, server_state=state, app_state={},  # type: ignore[call-arg]
                              _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return Connection(protocol, transport, state)


async def settle() -> None:
    """Let every task that can run, run (the apps here wait on nothing but the connection)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def feed(conn: Connection, chunks: list[bytes]) -> int:
    """Deliver the chunks as a socket would (not while reading is paused, nothing after close); returns how
    many of the app's tasks are left waiting, then cancels them."""
    for chunk in chunks:
        await settle()
        if conn.transport.closing:
            break
        assert conn.transport.reading, "reading stayed paused with no request in flight"
        conn.protocol.data_received(chunk)
    await settle()
    waiting = list(conn.state.tasks)
    for task in waiting:
        task.cancel()
    await settle()
    return len(waiting)


# --- generated requests and answers -----------------------------------------------------------------------


@dataclass
class Answer:
    """What the generated app sends for every request."""

    status: int = 200
    content_type: bytes = b"application/octet-stream"
    body: bytes = b""
    parts: int = 1
    length: str = "exact"  # exact | none | longer | shorter | twice | not-a-number
    connection_close: bool = False
    bad_header: bool = False
    raise_first: bool = False
    extra: list[tuple[bytes, bytes]] = field(default_factory=list)

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", self.content_type)] + self.extra
        size = len(self.body)
        headers += {
            "exact": [(b"content-length", b"%d" % size)],
            "none": [],
            "longer": [(b"content-length", b"%d" % (size + 3))],
            "shorter": [(b"content-length", b"%d" % max(size - 1, 0))],
            "twice": [(b"content-length", b"%d" % size), (b"content-length", b"%d" % size)],
            "not-a-number": [(b"content-length", b"12a")],
        }[self.length]
        if self.connection_close:
            headers.append((b"connection", b"close"))
        if self.bad_header:
            headers.append((b"x-bad", b"a\x01b"))
        return headers


def app_answering(answer: Answer) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            more = event.get("more_body", False)
        if answer.raise_first:
            raise RuntimeError("the app failed before answering")
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers()})
        body, parts = answer.body, answer.parts
        cut = [len(body) * i // parts for i in range(parts + 1)]
        for i in range(parts):
            await send({"type": "http.response.body", "body": body[cut[i]:cut[i + 1]],
                        "more_body": i < parts - 1})
    return app


answers = st.builds(
    Answer,
    status=st.sampled_from([200, 201, 204, 304, 400, 404, 413, 500, 503]),
    content_type=st.sampled_from([b"application/octet-stream", b"text/plain; charset=utf-8"]),
    body=st.binary(max_size=40),
    parts=st.integers(1, 3),
    length=st.sampled_from(["exact", "exact", "none", "longer", "shorter", "twice", "not-a-number"]),
    connection_close=st.booleans(),
    bad_header=st.integers(0, 9).map(lambda n: n == 0),
    raise_first=st.integers(0, 9).map(lambda n: n == 0),
    extra=st.lists(st.sampled_from([(b"x-trace", b"abc"), (b"Cache-Control", b"no-store")]), max_size=2),
)


@st.composite
def request_bytes(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["POST", "POST", "GET", "HEAD"]))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    path = draw(st.sampled_from(["/statefun", "/statefun/greeter", "/a%20b?x=1"]))
    body = draw(st.binary(max_size=30)) if method == "POST" else b""
    lines = [f"{method} {path} HTTP/{version}", "Host: x"]
    connection = draw(st.sampled_from([None, None, "close", "keep-alive"]))
    if connection:
        lines.append(f"Connection: {connection}")
    if method == "POST":
        if draw(st.booleans()):
            lines.append(f"Content-Length: {len(body)}")
            payload = body
        else:
            lines.append("Transfer-Encoding: chunked")
            payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        if draw(st.integers(0, 5)) == 0:
            lines.append("Expect: 100-continue")
    else:
        payload = b""
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """One to three requests on one connection, cut into chunks at arbitrary bytes."""
    data = b"".join(draw(st.lists(request_bytes(), min_size=1, max_size=3)))
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=3)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


async def exchange(protocol_class: type[HttpToolsProtocol], answer: Answer, chunks: list[bytes]
                   ) -> tuple[Connection, int]:
    conn = connect(protocol_class, app_answering(answer))
    return conn, await feed(conn, chunks)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers, chunks=streams())
def test_sends_the_same_bytes_as_uvicorn(answer: Answer, chunks: list[bytes]) -> None:
    async def both() -> tuple[tuple[Connection, int], tuple[Connection, int]]:
        return await exchange(HttpToolsProtocol, answer, chunks), await exchange(HttpProtocol, answer, chunks)

    (theirs, theirs_waiting), (ours, ours_waiting) = asyncio.run(both())
    note(f"uvicorn sent {theirs.sent!r}")
    assert ours.sent == theirs.sent
    assert ours_waiting == theirs_waiting
    assert ours.transport.closing == theirs.transport.closing
    assert ours.state.total_requests == theirs.state.total_requests


def test_an_answer_after_the_client_went_away_is_dropped_as_uvicorn_drops_it() -> None:
    """The connection is lost while the app works; then it answers: nothing is written, nothing raises."""
    async def one(protocol_class: type[HttpToolsProtocol]) -> tuple[Connection, list[BaseException | None]]:
        release = asyncio.Event()
        outcome: list[BaseException | None] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await release.wait()
            try:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", b"2")]})
                await send({"type": "http.response.body", "body": b"ok"})
                outcome.append(None)
            except BaseException as ex:  # noqa: BLE001 - recorded and compared below
                outcome.append(ex)

        conn = connect(protocol_class, app)
        conn.protocol.data_received(b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
        await settle()
        conn.protocol.connection_lost(None)
        release.set()
        await settle()
        return conn, outcome

    async def both() -> tuple[tuple[Connection, list[BaseException | None]], ...]:
        return await one(HttpToolsProtocol), await one(HttpProtocol)

    (theirs, their_outcome), (ours, our_outcome) = asyncio.run(both())
    assert their_outcome == our_outcome == [None]
    assert theirs.sent == ours.sent == b""
    assert ours.transport.closing and theirs.transport.closing
    assert ours.state.total_requests == theirs.state.total_requests == 0  # not counted as answered


def test_an_answer_with_a_content_length_leaves_in_one_write() -> None:
    answer = Answer(body=b"\x0a\x02ok", parts=1)
    request = b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"

    async def both() -> tuple[Connection, Connection]:
        return (await exchange(HttpToolsProtocol, answer, [request] * 3))[0], \
            (await exchange(HttpProtocol, answer, [request] * 3))[0]

    theirs, ours = asyncio.run(both())
    assert len(theirs.transport.writes) == 6  # uvicorn: the head, then the body
    assert len(ours.transport.writes) == 3
    assert ours.transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\ndate: ")
    assert ours.transport.writes[0].endswith(b"\r\n\r\n\x0a\x02ok")
    assert ours.sent == theirs.sent


def test_with_the_access_log_on_every_answer_takes_uvicorns_path(caplog: pytest.LogCaptureFixture) -> None:
    answer = Answer(body=b"ok")
    request = b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"

    async def one(protocol_class: type[HttpToolsProtocol]) -> Connection:
        conn = connect(protocol_class, app_answering(answer), access_log=True)
        await feed(conn, [request, request])
        return conn

    with caplog.at_level("INFO", logger="uvicorn.access"):
        theirs = asyncio.run(one(HttpToolsProtocol))
        logged_by_uvicorn = len(caplog.records)
        ours = asyncio.run(one(HttpProtocol))
    assert logged_by_uvicorn == 2
    assert len(caplog.records) == 4
    assert ours.sent == theirs.sent


def test_remembered_header_checks_are_bounded_and_never_admit_a_bad_value() -> None:
    for n in range(3 * http_protocol._CHECKED_MAX):
        assert http_protocol._valid(b"content-length", b"%d" % n)
    assert len(http_protocol._checked_values) <= http_protocol._CHECKED_MAX
    assert http_protocol._valid(b"x-ok", b"fine")
    assert not http_protocol._valid(b"x-bad", b"a\x01b")
    assert not http_protocol._valid(b"x-bad", b"a\x01b")  # still refused the second time
    assert not http_protocol._valid(b"bad name", b"fine")
    assert b"bad name" not in http_protocol._checked_names


def test_the_default_headers_are_checked_but_not_remembered() -> None:
    """uvicorn renews the date header every second; remembering each would crowd out the values that recur."""
    remembered = set(http_protocol._checked_values)
    defaults = http_protocol._EncodedDefaults()
    for second in range(50):
        date = b"Sun, 29 Nov 2026 08:00:%02d GMT" % second
        assert defaults.of([(b"date", date)]) == b"date: " + date + b"\r\n"
    assert http_protocol._checked_values == remembered
    assert defaults.of([(b"date", b"bad\x01")]) is None
    assert defaults.of([(b"Connection", b"close")]) is None  # frames the answer: uvicorn's path


# --- the joining transport -----------------------------------------------------------------------------------


def run(steps) -> RecordingTransport:  # noqa: ANN001 - steps(transport, joined) is an async function
    real = RecordingTransport()

    async def main() -> None:
        await steps(real, JoinedWritesTransport(real, asyncio.get_running_loop()))
        await asyncio.sleep(0)

    asyncio.run(main())
    return real


def test_the_writes_of_one_turn_leave_as_one_write_in_order() -> None:
    async def steps(real, joined):  # noqa: ANN001, ANN202
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        joined.writelines([b"bo", b"dy"])
        assert real.writes == []  # nothing sent until the turn ends
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        joined.write(b"next")
        await asyncio.sleep(0)

    assert run(steps).writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_a_buffer_reused_after_write_does_not_change_what_is_sent() -> None:
    async def steps(real, joined):  # noqa: ANN001, ANN202
        buffer = bytearray(b"first")
        joined.write(buffer)
        buffer[:] = b"XXXXX"

    assert run(steps).writes == [b"first"]


def test_close_sends_what_is_pending_first() -> None:
    async def steps(real, joined):  # noqa: ANN001, ANN202
        joined.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        joined.close()
        assert real.writes == [b"HTTP/1.1 400 Bad Request\r\n\r\n"] and real.closing

    run(steps)


def test_a_transport_closed_meanwhile_drops_the_pending_bytes() -> None:
    async def steps(real, joined):  # noqa: ANN001, ANN202
        joined.write(b"late")
        real.close()  # the peer went away before the turn ended

    assert run(steps).writes == []


def test_everything_else_reaches_the_real_transport() -> None:
    async def steps(real, joined):  # noqa: ANN001, ANN202
        joined.pause_reading()
        assert not real.reading
        assert joined.get_extra_info("peername") == ("127.0.0.1", 40000)
        assert not joined.is_closing()

    run(steps)


# --- the keep-alive timer, on a real clock ------------------------------------------------------------------

KEEP_ALIVE = 0.2
REQUEST = b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"


def answering_after(seconds: float) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(seconds)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


async def request(conn: Connection) -> None:
    count = conn.state.total_requests
    conn.protocol.data_received(REQUEST)
    while conn.state.total_requests == count:
        await asyncio.sleep(0.005)


async def closed_after(conn: Connection, since: float) -> float:
    """Seconds from ``since`` until the connection closes; waited for (a busy machine only makes it later), up
    to a deadline far beyond any timeout here."""
    while not conn.transport.closing:
        assert time.monotonic() - since < 50 * KEEP_ALIVE, "the idle connection was never closed"
        await asyncio.sleep(0.005)
    return time.monotonic() - since


def test_an_idle_connection_closes_after_the_keep_alive_timeout() -> None:
    async def scenario() -> float:
        conn = connect(HttpProtocol, answering_after(0), keep_alive=KEEP_ALIVE)
        await request(conn)
        return await closed_after(conn, time.monotonic())

    # NOTE: never before the timeout; how long after depends on the machine's load, so only bounded loosely.
    assert 0.8 * KEEP_ALIVE <= asyncio.run(scenario()) < 20 * KEEP_ALIVE


def test_a_connection_in_use_stays_open_past_many_timeouts_then_closes_when_idle() -> None:
    async def scenario() -> tuple[list[tuple[float, bool]], float]:
        conn = connect(HttpProtocol, answering_after(0), keep_alive=KEEP_ALIVE)
        used = []  # (seconds since the previous request, closed after this one)
        previous = time.monotonic()
        for _ in range(16):  # 16 x 0.05 s: the timer fires and finds the connection recently used each time
            await request(conn)
            now = time.monotonic()
            used.append((now - previous, conn.transport.closing))
            previous = now
            await asyncio.sleep(KEEP_ALIVE / 4)
        return used, await closed_after(conn, previous)

    used, idle_for = asyncio.run(scenario())
    # NOTE: a gap as long as the timeout (a stalled machine) may rightly close the connection; none of the
    #   others may.
    assert not any(closed for gap, closed in used if gap < 0.9 * KEEP_ALIVE), used
    assert sum(gap < 0.9 * KEEP_ALIVE for gap, _ in used) >= 8, f"the machine stalled too often to tell: {used}"
    assert 0.8 * KEEP_ALIVE <= idle_for < 20 * KEEP_ALIVE


def test_a_batch_longer_than_the_timeout_keeps_its_connection() -> None:
    async def scenario() -> tuple[bool, float]:
        conn = connect(HttpProtocol, answering_after(0), keep_alive=KEEP_ALIVE)
        await request(conn)  # arms the timer
        conn.protocol.app = conn.protocol.config.loaded_app = answering_after(2 * KEEP_ALIVE)
        await request(conn)  # the timer fires during this one
        closed_after_slow_batch = conn.transport.closing
        return closed_after_slow_batch, await closed_after(conn, time.monotonic())

    closed_after_slow_batch, idle_for = asyncio.run(scenario())
    assert not closed_after_slow_batch
    assert 0.8 * KEEP_ALIVE <= idle_for < 20 * KEEP_ALIVE


def test_a_lost_connection_leaves_no_timer() -> None:
    async def scenario() -> Any:
        conn = connect(HttpProtocol, answering_after(0), keep_alive=KEEP_ALIVE)
        await request(conn)
        armed = conn.protocol._idle_timer
        conn.protocol.connection_lost(None)
        return armed, conn.protocol._idle_timer

    armed, after = asyncio.run(scenario())
    assert armed is not None and armed.cancelled() and after is None


# --- the batch body from the first ASGI event -----------------------------------------------------------------


def post_through_asgi(app: Any, body: bytes, pieces: int) -> tuple[int, bytes]:
    """POST ``body`` straight to an ASGI app, handed over in ``pieces`` http.request events."""
    cut = [len(body) * i // pieces for i in range(pieces + 1)]
    events = [{"type": "http.request", "body": body[cut[i]:cut[i + 1]], "more_body": i < pieces - 1}
              for i in range(pieces)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/statefun", "raw_path": b"/statefun", "query_string": b"",
             "root_path": "", "headers": [(b"content-length", b"%d" % len(body))]}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize("pieces", [1, 2])
@pytest.mark.parametrize(("room", "status"), [(0, 200), (-1, 413)])
def test_the_body_is_held_to_the_size_limit_in_one_event_or_several(pieces: int, room: int, status: int) -> None:
    """One event: the body comes from the first event (server.BatchRequest); several: from Falcon's stream."""
    from examples import functions  # noqa: PLC0415
    from statefun_workers.server import NullRecorder, create_app  # noqa: PLC0415
    from statefun_workers.settings import Settings  # noqa: PLC0415

    body = greeter_request("Fay", seen=4)
    app = create_app(functions, settings=Settings(max_request_bytes=len(body) + room), recorder=NullRecorder())
    answer_status, answer = post_through_asgi(app, body, pieces)
    assert answer_status == status, answer
    if status == 413:
        assert f"request body of {len(body)} bytes is over the limit".encode() in answer
    else:
        assert answer == post_through_asgi(create_app(functions, recorder=NullRecorder()), body, 1)[1]


# --- on a real pool -------------------------------------------------------------------------------------------


def read_answers(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` whole answers (head, body) from a socket, framed by their Content-Length."""
    received = b""
    answers: list[tuple[bytes, bytes]] = []
    while len(answers) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(answers)} answers"
        received += chunk
        while b"\r\n\r\n" in received:
            head, rest = received.split(b"\r\n\r\n", 1)
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            if len(rest) < length:
                break
            answers.append((head, rest[:length]))
            received = rest[length:]
    return answers


def post_head(body: bytes) -> bytes:
    return (b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode())


@pytest.mark.server
def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    """Three requests sent at once on one connection: three whole answers, in order, on that connection."""
    bodies = [greeter_request(name, seen=1) for name in ("Ann", "Bob", "Cid")]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"".join(post_head(body) + body for body in bodies))
        answers = read_answers(sock, len(bodies))
    assert all(head.startswith(b"HTTP/1.1 200 ") for head, _ in answers)
    assert [body for _, body in answers] == [server.post(body)[2] for body in bodies]
    assert len({body for _, body in answers}) == len(bodies)


@pytest.mark.server
def test_a_body_arriving_in_pieces_is_read_whole(server: Server) -> None:
    """The body's second half comes after the app has started: it is read from Falcon's stream."""
    body = greeter_request("Dee", seen=3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(post_head(body) + body[:4])
        time.sleep(0.2)
        sock.sendall(body[4:])
        [(head, answer)] = read_answers(sock, 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert answer == server.post(body)[2]
