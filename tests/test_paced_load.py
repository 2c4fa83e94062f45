"""benchmarks/paced_load.py is an open loop: a server that stalls shows every request that fell due during the
stall as late (a closed loop such as wrk would wait with it and show one slow request)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STALLING_SERVER = r'''
import asyncio, sys, time

class Answer(asyncio.Protocol):
    answered = 0

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            Answer.answered += 1
            if Answer.answered == 20:
                time.sleep(0.4)  # the whole server stalls, as a long GC pause or a blocking call would
            status = b"200 OK" if Answer.answered != 30 else b"500 Internal Server Error"
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")

async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
'''


@pytest.mark.slow
@pytest.mark.parametrize("connections", [64, 1])
def test_a_stall_makes_every_request_due_during_it_late(tmp_path: Path, connections: int) -> None:
    """With one connection the requests wait in the generator, not in the server: their latency still runs
    from when they were due."""
    (tmp_path / "000.bin").write_bytes(b"body")
    server = subprocess.Popen([sys.executable, "-c", STALLING_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        port = int(server.stdout.readline())
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "paced_load.py"),
                               f"http://127.0.0.1:{port}/statefun", str(tmp_path), "100", "1.5",
                               "--connections", str(connections)],
                              capture_output=True, text=True, timeout=60)
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sent"] == report["answered"] == 150
    assert report["kernel_timestamps"] is True  # answers are timed by the kernel, not when the generator reads
    assert report["non_200"] == 1 and report["socket"] == 0
    # About 40 requests fell due during the 0.4 s stall (100 per second): well over 1% of 150 were late by
    # more than 0.2 s, while the median request, due outside the stall, was answered at once.
    assert report["p99_ms"] > 200, report
    assert report["p50_ms"] < 100, report
    # requests due while every connection was busy opened more, up to the limit
    assert report["peak_connections"] == connections if connections == 1 else report["peak_connections"] > 1
