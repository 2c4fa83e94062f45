"""A worker's memory under a burst of large request bodies: its resident size before, at the peak, and after.

Starts a one-worker pool from this checkout (``gunicorn -c gunicorn.conf.py app``), sends ``--bodies``
concurrent bodies of ``--mib`` MiB each (not ToFunctions: each is read whole, then refused 400, so the figure is
what holding and freeing the bodies costs), samples the worker's VmRSS every 5 ms, and prints one line. Extra
``NAME=value`` arguments go to the server's environment, e.g. ``STATEFUN_MAX_BUFFERED_BYTES=1073741824`` to see
the worker without its byte budget. docs/hardening.md quotes its figures.

    .venv/bin/python benchmarks/large_bodies.py
    .venv/bin/python benchmarks/large_bodies.py --bodies 16 --mib 32 STATEFUN_MAX_BUFFERED_BYTES=1073741824
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_of(master: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("the worker did not start")


def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the pool did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=16)
    parser.add_argument("--mib", type=int, default=32, help="body size; 32 MiB is one byte over the default limit")
    parser.add_argument("env", nargs="*", help="NAME=value for the server")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    env.update(item.split("=", 1) for item in args.env)
    master = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "app"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(port)
        worker = worker_of(master.pid)
        before = peak = rss_mb(worker)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(worker))
                time.sleep(0.005)

        body = b"\0" * ((args.mib << 20) - 1)
        statuses: collections.Counter[int] = collections.Counter()

        def post() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("POST", "/statefun", body=body)
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1

        sampler = threading.Thread(target=sample)
        sampler.start()
        posters = [threading.Thread(target=post) for _ in range(args.bodies)]
        for thread in posters:
            thread.start()
        for thread in posters:
            thread.join()
        time.sleep(0.5)
        done.set()
        sampler.join()
        print(f"{args.bodies} x {args.mib} MiB: worker RSS {before} MB before, {peak} MB peak, "
              f"{rss_mb(worker)} MB after; answers {dict(sorted(statuses.items()))}")
    finally:
        os.killpg(master.pid, signal.SIGTERM)
        master.wait(timeout=30)


if __name__ == "__main__":
    main()
