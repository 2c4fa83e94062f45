"""Fixed-rate load: POST bodies at a constant rate, and measure each answer's latency from when it was due.

Usage: ``python paced_load.py URL BODIES_DIR RATE SECONDS [--connections N]``; prints one JSON object.

wrk drives a server as fast as it answers (closed loop); a latency percentile at a chosen rate needs an open
loop, as wrk2 does: request ``k`` is due at ``start + k / RATE`` whatever happened before, and its latency runs
from that moment to the end of its answer. A server that stalls therefore shows every request that was due
during the stall as late, instead of the load generator quietly waiting with it (coordinated omission).

Requests go out on keep-alive connections (one request at a time each, no pipelining) from a pool that grows,
up to ``--connections``, when every open one is busy; a request that finds none free waits, and the wait counts
in its latency. The generator is an asyncio loop (uvloop when installed) on one core, reading answers with
httptools' parser, and it keeps its own delays out of the figures where it can and reports them where it
cannot:

* **Reading.** An answer's end is the time the kernel received its last bytes (``SO_TIMESTAMPNS``, read with
  ``recvmsg``), not the time the generator got round to reading them, so a busy generator does not add its
  own queue to the server's latency. ``read_lag_p99_ms`` is how long answers waited to be read; on a system
  without the timestamps (``kernel_timestamps: false``) the read time is used and that lag is in the figures.
* **Sending.** ``send_lag_p99_ms`` is how late the generator's timer handed requests out; that lateness is in
  the latency (it runs from when a request was due). A send lag near the latency figures means the generator
  was the limit, and the figure is not worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import socket
import struct
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httptools

_PERCENTILES = (50.0, 90.0, 99.0, 99.9)

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux's option for receive timestamps in nanoseconds (the socket module does not name it)."""
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_READ_BYTES = 1 << 18


class Load:
    """The open loop's state: requests waiting for a connection, idle connections, what was measured."""

    def __init__(self, host: str, port: int, requests: list[bytes], limit: int) -> None:
        self.host, self.port, self.requests, self.limit = host, port, requests, limit
        self.waiting: collections.deque[tuple[int, float]] = collections.deque()
        self.idle: list[Client] = []
        self.opened = self.peak = 0
        self.latencies: list[float] = []
        self.read_lags: list[float] = []
        self.kernel_timestamps = True
        self.non_200 = self.socket_errors = 0
        self.loop = asyncio.get_running_loop()
        self.realtime_minus_counter = time.time() - time.perf_counter()
        """Converts the kernel's receive timestamps (wall clock) to ``perf_counter`` time, the schedule's."""

    def due(self, index: int, at: float) -> None:
        """Request ``index`` is due ``at`` (perf_counter time): send it on an idle connection, or open one, or
        queue it."""
        if self.idle:
            self.idle.pop().send(index, at)
            return
        self.waiting.append((index, at))
        if self.opened < self.limit:
            self.opened += 1
            self.peak = max(self.peak, self.opened)
            asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            self.kernel_timestamps = False
        try:
            await self.loop.sock_connect(sock, (self.host, self.port))
        except OSError:
            sock.close()
            self.opened -= 1
            self.socket_errors += 1
            if self.waiting:
                self.waiting.popleft()
            return
        self.free(Client(self, sock))

    def free(self, client: Client) -> None:
        """A connection finished an answer (or just opened): give it the oldest waiting request, or park it."""
        if self.waiting:
            client.send(*self.waiting.popleft())
        else:
            self.idle.append(client)

    def lost(self, client: Client, failed: bool) -> None:
        self.opened -= 1
        if failed:
            self.socket_errors += 1
        with contextlib.suppress(ValueError):
            self.idle.remove(client)


class Client:
    """One HTTP/1.1 keep-alive connection, one request at a time (no pipelining), answers parsed by httptools
    and timed by the kernel's receive timestamps."""

    def __init__(self, load: Load, sock: socket.socket) -> None:
        self.load = load
        self.sock = sock
        self.parser = httptools.HttpResponseParser(self)
        self.started: float | None = None
        self.arrived = 0.0
        """When the kernel received the bytes last read (perf_counter time)."""
        self.unsent = memoryview(b"")
        self.writing = False
        self.closed = False
        load.loop.add_reader(sock.fileno(), self._readable)

    def send(self, index: int, due: float) -> None:
        self.started = due
        self.unsent = memoryview(self.load.requests[index % len(self.load.requests)])
        self._write()

    def _write(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close(failed=True)
            return
        self.unsent = self.unsent[sent:]
        if self.unsent and not self.writing:
            self.load.loop.add_writer(self.sock.fileno(), self._write)
            self.writing = True
        elif not self.unsent and self.writing:
            self.load.loop.remove_writer(self.sock.fileno())
            self.writing = False

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(_READ_BYTES, _ANCILLARY_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self.close(failed=True)
            return
        if not data:
            self.close(failed=self.started is not None)
            return
        self.arrived = time.perf_counter()
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                self.arrived = seconds + nanoseconds * 1e-9 - self.load.realtime_minus_counter
                break
        else:  # NOTE: the option was taken but no timestamp came: the figures include the read lag
            self.load.kernel_timestamps = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close(failed=True)

    def on_message_complete(self) -> None:
        assert self.started is not None
        self.load.latencies.append(self.arrived - self.started)
        self.load.read_lags.append(max(0.0, time.perf_counter() - self.arrived))
        if self.parser.get_status_code() != 200:
            self.load.non_200 += 1
        self.started = None
        if self.parser.should_keep_alive():
            self.load.free(self)
        else:
            self.close(failed=False)

    def close(self, failed: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.load.loop.remove_reader(self.sock.fileno())
        if self.writing:
            self.load.loop.remove_writer(self.sock.fileno())
        self.sock.close()
        self.load.lost(self, failed=failed)


def percentile(ordered: list[float], p: float) -> float:
    """The nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


async def run(url: str, bodies: list[bytes], rate: float, seconds: float, connections: int) -> dict[str, object]:
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    requests = [(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body for body in bodies]
    load = Load(host, port, requests, connections)
    # NOTE: times are perf_counter's: uvloop's loop.time() counts whole milliseconds.
    lags: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    sent = 0
    while sent < total:
        now = time.perf_counter()
        # Everything due by now goes out at once; then sleep until the next is due.
        while sent < total and start + sent / rate <= now:
            due = start + sent / rate
            lags.append(now - due)
            load.due(sent, due)
            sent += 1
        if sent < total:
            wait = start + sent / rate - time.perf_counter()
            # NOTE: uvloop's timers count whole milliseconds: sleep on one only while the next request is
            #   further away than that, then poll the loop until it is due (the generator owns its core).
            await asyncio.sleep(wait - 0.002 if wait > 0.003 else 0)
    deadline = time.perf_counter() + 30
    while len(load.latencies) + load.socket_errors < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    for client in list(load.idle):
        client.close(failed=False)
    latencies = sorted(load.latencies)
    lags.sort()
    read_lags = sorted(load.read_lags)
    report: dict[str, object] = {"rate": rate, "sent": total, "answered": len(latencies),
                                 "achieved_rate": round(len(latencies) / elapsed, 1), "non_200": load.non_200,
                                 "socket": load.socket_errors, "peak_connections": load.peak,
                                 "send_lag_p99_ms": round(percentile(lags, 99.0) * 1e3, 3),
                                 "read_lag_p99_ms": round(percentile(read_lags, 99.0) * 1e3, 3),
                                 "kernel_timestamps": load.kernel_timestamps}
    for p in _PERCENTILES:
        report[f"p{p:g}_ms"] = round(percentile(latencies, p) * 1e3, 3)
    report["max_ms"] = round(latencies[-1] * 1e3, 3) if latencies else 0.0
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("bodies", type=Path, help="a folder of 000.bin, 001.bin, ... POSTed in turn")
    parser.add_argument("rate", type=float, help="requests per second")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--connections", type=int, default=64, help="most connections open at once (64)")
    args = parser.parse_args()
    bodies = [path.read_bytes() for path in sorted(args.bodies.glob("*.bin"))]
    if not bodies or args.rate <= 0 or args.seconds <= 0:
        parser.error("need bodies, a positive rate and positive seconds")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(json.dumps(asyncio.run(run(args.url, bodies, args.rate, args.seconds, args.connections))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
