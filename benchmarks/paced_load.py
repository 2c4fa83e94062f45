"""Fixed-rate load: POST bodies at a constant rate, and measure each answer's latency from when it was due.

Usage: ``python paced_load.py URL BODIES_DIR RATE SECONDS [--connections N]``; prints one JSON object.

wrk drives a server as fast as it answers (closed loop); a latency percentile at a chosen rate needs an open
loop, as wrk2 does: request ``k`` is due at ``start + k / RATE`` whatever happened before, and its latency runs
from that moment to the end of its answer. A server that stalls therefore shows every request that was due
during the stall as late, instead of the load generator quietly waiting with it (coordinated omission).

Requests go out on keep-alive connections (one request at a time each, no pipelining) from a pool that grows,
up to ``--connections``, when every open one is busy; a request that finds none free waits, and the wait counts
in its latency. The generator is asyncio protocols with httptools' parser (uvloop when installed) on one core,
and it checks itself: ``send_lag_p99_ms`` is how late its own timer let it hand requests out. A lag near the
latency figures means the generator, not the server, was the limit, and the figure is not worth quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httptools

_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class Load:
    """The open loop's state: requests waiting for a connection, idle connections, what was measured."""

    def __init__(self, host: str, port: int, requests: list[bytes], limit: int) -> None:
        self.host, self.port, self.requests, self.limit = host, port, requests, limit
        self.waiting: collections.deque[tuple[int, float]] = collections.deque()
        self.idle: list[Client] = []
        self.opened = self.peak = 0
        self.latencies: list[float] = []
        self.non_200 = self.socket_errors = 0
        self.loop = asyncio.get_running_loop()

    def due(self, index: int, at: float) -> None:
        """Request ``index`` is due ``at`` (loop time): send it on an idle connection, or open one, or queue it."""
        if self.idle:
            self.idle.pop().send(index, at)
            return
        self.waiting.append((index, at))
        if self.opened < self.limit:
            self.opened += 1
            self.peak = max(self.peak, self.opened)
            connecting = self.loop.create_connection(lambda: Client(self), self.host, self.port)
            asyncio.ensure_future(connecting).add_done_callback(self._connected)

    def _connected(self, future: asyncio.Future[tuple[asyncio.BaseTransport, Client]]) -> None:
        if future.exception() is not None:
            self.opened -= 1
            self.socket_errors += 1
            if self.waiting:
                self.waiting.popleft()

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


class Client(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection, one request at a time (no pipelining), answers parsed by httptools."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.started: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # NOTE: uvloop's is not an asyncio.Transport
        self.load.free(self)

    def send(self, index: int, due: float) -> None:
        assert self.transport is not None
        self.started = due
        self.transport.write(self.load.requests[index % len(self.load.requests)])

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.load.socket_errors += 1
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        assert self.started is not None and self.transport is not None
        self.load.latencies.append(time.perf_counter() - self.started)
        if self.parser.get_status_code() != 200:
            self.load.non_200 += 1
        self.started = None
        if self.parser.should_keep_alive():
            self.load.free(self)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.lost(self, failed=self.started is not None)


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
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
    deadline = time.perf_counter() + 30
    while len(load.latencies) + load.socket_errors < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    for client in load.idle:
        if client.transport is not None:
            client.transport.close()
    latencies = sorted(load.latencies)
    lags.sort()
    report: dict[str, object] = {"rate": rate, "sent": total, "answered": len(latencies),
                                 "achieved_rate": round(len(latencies) / elapsed, 1), "non_200": load.non_200,
                                 "socket": load.socket_errors, "peak_connections": load.peak,
                                 "send_lag_p99_ms": round(percentile(lags, 99.0) * 1e3, 3)}
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
