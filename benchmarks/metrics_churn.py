"""Scrape cost as workers churn: the archive fold (ours) against prometheus-client's own mark_process_dead.

Simulates worker lifetimes without forking (each "worker" is a Recorder with its own pid): it records a few
batches for several typenames, exits, and the master's child_exit runs. Two live workers stay throughout.
Prints the scrape time (collect + text format) and the number of .db files after 0..N restarts, for both
strategies, and the master's cost per child_exit.

    .venv/bin/python benchmarks/metrics_churn.py [--restarts 1000] [--typenames 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as upstream

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from statefun_workers import (
    BatchResult,  # noqa: E402
    multiprocess,  # noqa: E402
)
from statefun_workers.metrics import Recorder  # noqa: E402


def ok_batch(typename: str) -> BatchResult:
    """The core's own BatchResult for an ok batch of 3 messages, 12 state bytes read and written."""
    result = BatchResult(response=b"\x00" * 40, typename=typename, id="x", invocations=3, state_bytes_read=12)
    result.state_bytes_written, result.messages, result.egresses = 12, 1, 1
    return result


def scrape_seconds(path: str, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        registry = CollectorRegistry()
        registry.register(multiprocess.LockedCollector(path))
        generate_latest(registry)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def live_worker(path: str, pid: int, typenames: list[str]) -> Recorder:
    rec = Recorder(directory=path, pid=pid, interval=None)
    rec.start(typenames)
    for i in range(20):
        rec.request_started()
        rec.request_finished(ok_batch(typenames[i % len(typenames)]), 0.0002 * (1 + i % 7), 300)
    rec.flush()
    return rec


def run(
    strategy: str, restarts: int, typenames: list[str], checkpoints: list[int]
) -> list[tuple[int, float, int, float]]:
    path = tempfile.mkdtemp(prefix=f"churn-{strategy}-")
    try:
        live = [live_worker(path, 1, typenames), live_worker(path, 2, typenames)]
        rows = []
        exit_costs: list[float] = []
        for n in range(restarts + 1):
            if n in checkpoints:
                files = len([f for f in os.listdir(path) if f.endswith(".db")])
                cost = statistics.mean(exit_costs) if exit_costs else 0.0
                rows.append((n, scrape_seconds(path), files, cost))
                exit_costs.clear()
            if n == restarts:
                break
            pid = 100 + n
            live_worker(path, pid, typenames).stop()
            start = time.perf_counter()
            if strategy == "archive":
                multiprocess.mark_process_dead(pid, path)
            else:
                upstream.mark_process_dead(pid, path)
            exit_costs.append(time.perf_counter() - start)
        for rec in live:
            rec.stop()
        return rows
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=1000)
    parser.add_argument("--typenames", type=int, default=4)
    args = parser.parse_args()
    typenames = [f"bench/fn{i}" for i in range(args.typenames)]
    checkpoints = sorted({0, 10, 100, 250, 500, args.restarts} & set(range(args.restarts + 1)))
    results = {s: run(s, args.restarts, typenames, checkpoints) for s in ("archive", "upstream")}
    print(f"{args.typenames} typenames, 2 live workers; scrape = collect + text format, median of 3")
    print(
        f"{'restarts':>8} | {'archive: scrape ms':>18} {'files':>6} {'child_exit ms':>13} | "
        f"{'upstream: scrape ms':>19} {'files':>6}"
    )
    for (n, a_scrape, a_files, a_exit), (_, u_scrape, u_files, _) in zip(
        results["archive"], results["upstream"], strict=True
    ):
        print(
            f"{n:>8} | {a_scrape * 1e3:>18.2f} {a_files:>6} {a_exit * 1e3:>13.3f} | "
            f"{u_scrape * 1e3:>19.2f} {u_files:>6}"
        )


if __name__ == "__main__":
    main()
