"""Per-request metric cost: the Recorder against the same updates made through prometheus-client's metrics.

Both write to a multiprocess directory, as under gunicorn. The prometheus-client variant makes the updates a
request needs (in-flight gauge up and down, 2 counters for batches and invocations, 2 for state bytes, 4 for
effects, 3 histogram observations, busy seconds) with pre-resolved label children, which is its best case.

    .venv/bin/python benchmarks/metrics_hot_path.py [-n 200000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from statefun_workers import BatchResult  # noqa: E402
from statefun_workers.metrics import DURATION_BUCKETS, SIZE_BUCKETS, Recorder  # noqa: E402


def ok_batch(typename: str = "bench/fn") -> BatchResult:
    """The core's own BatchResult for an ok batch of 3 messages, 12 state bytes read and written."""
    result = BatchResult(response=b"\x00" * 40, typename=typename, id="x", invocations=3, state_bytes_read=12)
    result.state_bytes_written, result.messages, result.egresses = 12, 1, 1
    return result


def recorder_cost(path: str, n: int) -> tuple[float, float]:
    rec = Recorder(directory=path, pid=1, interval=None)
    rec.start(["bench/fn"])
    result = ok_batch()
    start = time.perf_counter()
    for _ in range(n):
        rec.request_started()
        rec.request_finished(result, 0.0003, 200)  # type: ignore[arg-type]
    per_request = (time.perf_counter() - start) / n
    flushes = []
    for _ in range(50):
        rec.request_started()
        rec.request_finished(result, 0.0003, 200)  # type: ignore[arg-type]
        t = time.perf_counter()
        rec.flush()
        flushes.append(time.perf_counter() - t)
    rec.stop()
    return per_request, sorted(flushes)[len(flushes) // 2]


def prometheus_client_cost(path: str, n: int) -> float:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

    values.ValueClass = values.MultiProcessValue(lambda: 2)
    r = CollectorRegistry()
    in_flight = Gauge("in_flight", "h", registry=r, multiprocess_mode="livesum")
    batches = Counter("batches", "h", ["typename", "outcome"], registry=r).labels("bench/fn", "ok")
    invocations = Counter("invocations", "h", ["typename", "outcome"], registry=r).labels("bench/fn", "ok")
    state = Counter("state", "h", ["typename", "direction"], registry=r)
    read, written = state.labels("bench/fn", "read"), state.labels("bench/fn", "written")
    outgoing = Counter("outgoing", "h", ["typename", "kind"], registry=r)
    kinds = [outgoing.labels("bench/fn", k) for k in ("message", "delayed_message", "cancellation", "egress")]
    duration = Histogram("duration", "h", ["typename"], buckets=DURATION_BUCKETS, registry=r).labels(
        "bench/fn"
    )
    req = Histogram("req", "h", ["typename"], buckets=SIZE_BUCKETS, registry=r).labels("bench/fn")
    resp = Histogram("resp", "h", ["typename"], buckets=SIZE_BUCKETS, registry=r).labels("bench/fn")
    busy = Counter("busy", "h", registry=r)
    res = ok_batch()
    start = time.perf_counter()
    for _ in range(n):
        in_flight.inc()
        t0 = time.perf_counter()
        in_flight.dec()
        batches.inc()
        invocations.inc(res.invocations)
        read.inc(res.state_bytes_read)
        written.inc(res.state_bytes_written)
        for child, value in zip(
            kinds, (res.messages, res.delayed, res.cancellations, res.egresses), strict=True
        ):
            child.inc(value)
        duration.observe(0.0003)
        req.observe(200)
        resp.observe(len(res.response))
        busy.inc(time.perf_counter() - t0)
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000)
    args = parser.parse_args()
    path = tempfile.mkdtemp(prefix="metrics-hot-path-")
    try:
        ours, flush = recorder_cost(path, args.n)
        theirs = prometheus_client_cost(path, args.n // 4)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    print(f"Recorder.request_started + request_finished: {ours * 1e6:6.2f} µs/request")
    print(f"  flush of one changed typename (~75 series):  {flush * 1e6:6.1f} µs (every 0.1 s per worker)")
    print(f"prometheus-client metrics, same updates:     {theirs * 1e6:6.2f} µs/request")


if __name__ == "__main__":
    main()
