"""One send per response: the joining transport, on a real event loop, and pipelined requests on a real pool."""

from __future__ import annotations

import asyncio
import socket

import pytest

from statefun_workers.http_writes import JoinedWritesTransport

from .conftest import Server
from .wire import greeter_request


class RecordingTransport(asyncio.Transport):
    """What the real transport would have been asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default


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
        assert real.paused
        assert joined.get_extra_info("peername") == ("127.0.0.1", 1)
        assert not joined.is_closing()

    run(steps)


@pytest.mark.server
def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    """Three requests sent at once on one connection: three whole answers, in order, on that connection."""
    bodies = [greeter_request(name, seen=1) for name in ("Ann", "Bob", "Cid")]
    raw = b"".join(
        b"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        for body in bodies)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        received = b""
        answers: list[bytes] = []
        while len(answers) < len(bodies):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} answers"
            received += chunk
            while b"\r\n\r\n" in received:
                head, rest = received.split(b"\r\n\r\n", 1)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                if len(rest) < length:
                    break
                assert head.startswith(b"HTTP/1.1 200 ")
                answers.append(rest[:length])
                received = rest[length:]
    assert answers == [server.post(body)[2] for body in bodies]
    assert len(set(answers)) == len(bodies)
