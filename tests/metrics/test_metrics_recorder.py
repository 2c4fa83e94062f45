"""The recorder: what each BatchResult adds, flushes, and that its files read like prometheus-client's own."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import Counter, Histogram, values

from statefun_workers import metrics, multiprocess
from statefun_workers._tally import SIZE_BUCKETS, bucket
from statefun_workers.errors import FunctionError, MalformedRequestError, StatefunError, UnknownFunctionError
from statefun_workers.handler import BatchResult
from statefun_workers.metrics import DURATION_BUCKETS, FAMILIES, Recorder

from .results import batch_result
from .scrapes import Samples, parse

T = "test/fn"


def lbl(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def one(rec: Recorder, result: BatchResult, seconds: float = 0.001, request_bytes: int = 100) -> None:
    rec.request_started()
    rec.request_finished(result, seconds, request_bytes)


@pytest.fixture
def rec(mpdir: str) -> Iterator[Recorder]:
    r = Recorder(directory=mpdir, pid=101, interval=None)
    r.start([T])
    yield r
    r.stop()


def test_started_worker_is_live_with_zeroed_series(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    s = scrape()
    assert s[("statefun_worker_processes", ())] == 1
    assert s[("statefun_requests_in_flight", ())] == 0
    for outcome in ("ok", "incomplete_context", "error"):
        assert s[("statefun_batches_total", lbl(typename=T, outcome=outcome))] == 0
    assert s[("statefun_batch_duration_seconds_count", lbl(typename=T))] == 0


def test_outcomes_invocations_and_errors(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    one(
        rec,
        batch_result(
            invocations=3,
            state_bytes_read=7,
            state_bytes_written=5,
            messages=2,
            delayed=1,
            cancellations=1,
            egresses=4,
        ),
    )
    one(rec, batch_result(outcome="incomplete_context", invocations=5, state_bytes_read=2, response=b"x" * 3))
    one(rec, batch_result(outcome="error", invocations=4, error=FunctionError("boom"), response=b""))
    one(
        rec,
        batch_result(
            outcome="error", invocations=0, typename=None, error=UnknownFunctionError("no"), response=b""
        ),
    )
    one(
        rec,
        batch_result(
            outcome="error", invocations=0, typename=None, error=MalformedRequestError("bad"), response=b""
        ),
    )
    rec.flush()
    s = scrape()
    assert s[("statefun_invocations_total", lbl(typename=T, outcome="ok"))] == 3
    assert s[("statefun_invocations_total", lbl(typename=T, outcome="error"))] == 4
    assert s[("statefun_batches_total", lbl(typename=T, outcome="ok"))] == 1
    assert s[("statefun_batches_total", lbl(typename=T, outcome="incomplete_context"))] == 1
    assert s[("statefun_batches_total", lbl(typename=T, outcome="error"))] == 1
    assert s[("statefun_batches_total", lbl(typename="unknown", outcome="error"))] == 2
    assert s[("statefun_invocations_total", lbl(typename="unknown", outcome="error"))] == 0
    assert s[("statefun_state_bytes_total", lbl(typename=T, direction="read"))] == 9
    assert s[("statefun_state_bytes_total", lbl(typename=T, direction="written"))] == 5
    assert s[("statefun_outgoing_total", lbl(typename=T, kind="message"))] == 2
    assert s[("statefun_outgoing_total", lbl(typename=T, kind="delayed_message"))] == 1
    assert s[("statefun_outgoing_total", lbl(typename=T, kind="cancellation"))] == 1
    assert s[("statefun_outgoing_total", lbl(typename=T, kind="egress"))] == 4
    assert s[("statefun_errors_total", lbl(typename=T, reason="function_failed"))] == 1
    assert s[("statefun_errors_total", lbl(typename="unknown", reason="unknown_function"))] == 1
    assert s[("statefun_errors_total", lbl(typename="unknown", reason="malformed_request"))] == 1
    assert s[("statefun_request_bytes_sum", lbl(typename=T))] == 300
    assert s[("statefun_response_bytes_sum", lbl(typename=T))] == 13
    assert s[("statefun_batch_duration_seconds_count", lbl(typename=T))] == 3
    assert s[("statefun_requests_in_flight", ())] == 0


def test_a_request_the_core_never_saw(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    rec.request_started()
    rec.request_finished(None, 0.01)
    rec.flush()
    s = scrape()
    assert s[("statefun_batches_total", lbl(typename="unknown", outcome="error"))] == 1
    assert s[("statefun_errors_total", lbl(typename="unknown", reason="not_dispatched"))] == 1
    assert s[("statefun_requests_in_flight", ())] == 0


def test_histogram_buckets_are_cumulative_and_inclusive(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    for seconds in (0.0001, 0.00010001, 0.0004, 100.0):  # 0.0001 is on a bound: it belongs to le="0.0001"
        one(rec, batch_result(), seconds)
    rec.flush()
    s = scrape()

    def bucket(le: str) -> float:
        return s[("statefun_batch_duration_seconds_bucket", lbl(typename=T, le=le))]

    assert (bucket("0.0001"), bucket("0.00025"), bucket("0.0005"), bucket("60.0"), bucket("+Inf")) == (
        1,
        2,
        3,
        3,
        4,
    )
    assert s[("statefun_batch_duration_seconds_sum", lbl(typename=T))] == pytest.approx(100.00050001)
    assert (
        len([k for k in s if k[0] == "statefun_batch_duration_seconds_bucket"]) == len(DURATION_BUCKETS) + 1
    )


def test_error_reasons_are_bounded(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    for i in range(metrics.MAX_ERROR_REASONS + 5):
        error = StatefunError("x")
        error.reason = f"r{i}"  # type: ignore[misc]
        one(rec, batch_result(outcome="error", error=error))
    rec.flush()
    reasons = {dict(k[1])["reason"]: v for k, v in scrape().items() if k[0] == "statefun_errors_total"}
    assert len(reasons) == metrics.MAX_ERROR_REASONS + 1
    assert reasons["other"] == 5


def test_a_request_whose_client_left_before_its_body_was_whole(
    rec: Recorder, scrape: Callable[[], Samples]
) -> None:
    """Not a batch: only the in-flight count and the busy time move."""
    clock = [100.0]
    rec.clock = lambda: clock[0]
    rec.request_started()
    clock[0] = 101.5
    rec.request_dropped()
    rec.flush()
    s = scrape()
    assert s[("statefun_requests_in_flight", ())] == 0
    assert s[("statefun_busy_seconds_total", ())] == 1.5
    counted = {key: value for key, value in s.items()
               if key[0].startswith(("statefun_batches", "statefun_errors", "statefun_batch_duration")) and value}
    assert counted == {}


def test_flush_is_idempotent_and_in_flight_tracked(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    one(rec, batch_result(invocations=2))
    rec.request_started()
    rec.request_started()
    for _ in range(3):
        rec.flush()
    s = scrape()
    assert s[("statefun_invocations_total", lbl(typename=T, outcome="ok"))] == 2
    assert s[("statefun_requests_in_flight", ())] == 2
    rec.request_finished(batch_result(), 0.001)
    rec.request_finished(batch_result(), 0.001)
    rec.flush()
    assert scrape()[("statefun_requests_in_flight", ())] == 0


def test_busy_seconds_count_only_time_with_requests_in_flight(
    rec: Recorder, scrape: Callable[[], Samples]
) -> None:
    clock = [100.0]
    rec.clock = lambda: clock[0]
    rec.request_started()  # busy from 100
    clock[0] = 101.0
    rec.request_started()  # overlapping requests do not count twice
    clock[0] = 102.0
    rec.flush()  # an open busy period is flushed up to now
    assert scrape()[("statefun_busy_seconds_total", ())] == 2.0
    rec.request_finished(batch_result(), 2.0)
    clock[0] = 103.0
    rec.request_finished(batch_result(), 2.0)  # idle from 103
    clock[0] = 110.0
    rec.flush()
    assert scrape()[("statefun_busy_seconds_total", ())] == 3.0
    rec.busy_total = 1.0  # a racing flush can never make it go back
    rec.flush()
    assert scrape()[("statefun_busy_seconds_total", ())] == 3.0


def test_stop_flushes_the_last_totals(rec: Recorder, scrape: Callable[[], Samples]) -> None:
    for _ in range(5):
        one(rec, batch_result())
    rec.stop()
    assert scrape()[("statefun_batches_total", lbl(typename=T, outcome="ok"))] == 5
    rec.stop()  # twice is harmless


def test_files_are_keyed_like_prometheus_client_metrics(
    rec: Recorder, scrape: Callable[[], Samples], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A series written by the recorder and by prometheus-client's own metric (another pid) add up as one."""
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 202))
    counter = Counter(
        "statefun_invocations", FAMILIES["statefun_invocations"][1], ["typename", "outcome"], registry=None
    )
    hist = Histogram(
        "statefun_batch_duration_seconds",
        FAMILIES["statefun_batch_duration_seconds"][1],
        ["typename"],
        buckets=DURATION_BUCKETS,
        registry=None,
    )
    counter.labels(T, "ok").inc(2)
    hist.labels(T).observe(0.0003)
    one(rec, batch_result(invocations=3), 0.0003)
    rec.flush()
    s = scrape()
    assert s[("statefun_invocations_total", lbl(typename=T, outcome="ok"))] == 5
    assert s[("statefun_batch_duration_seconds_bucket", lbl(typename=T, le="0.0005"))] == 2
    assert s[("statefun_batch_duration_seconds_count", lbl(typename=T))] == 2
    # NOTE: the two files this test's metrics opened, closed through the values (close_all_files is 0.21+).
    for value in (counter.labels(T, "ok")._value, hist.labels(T)._sum):
        value._file.close()  # type: ignore[attr-defined]


def test_render_single_process_uses_a_private_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    rec = Recorder(interval=None)
    monkeypatch.setattr(metrics, "recorder", rec)
    rec.request_started()
    rec.request_finished(batch_result(invocations=4), 0.001)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    s = parse(body.decode())
    assert s[("statefun_invocations_total", lbl(typename=T, outcome="ok"))] == 4
    assert s[("statefun_worker_processes", ())] == 1
    directory = rec.directory
    assert rec.private and directory is not None
    rec.stop()
    assert not os.path.exists(directory)


def test_families_include_the_ones_dashboards_and_autoscaling_read() -> None:
    for name in (
        "statefun_invocations",
        "statefun_batches",
        "statefun_batch_duration_seconds",
        "statefun_state_bytes",
        "statefun_requests_in_flight",
        "statefun_worker_processes",
        "statefun_busy_seconds",
    ):
        assert name in FAMILIES


IMPORT_DOES_NOTHING = """
import atexit, os
hooks = []
real_atexit, real_at_fork = atexit.register, os.register_at_fork
atexit.register = lambda f, *a, **k: hooks.append(f) or real_atexit(f, *a, **k)
os.register_at_fork = lambda **k: hooks.extend(k.values()) or real_at_fork(**k)
import statefun_workers.gunicorn_config, statefun_workers.metrics as metrics, statefun_workers.server
ours = lambda: [f for f in hooks if (getattr(f, "__module__", None) or "").startswith("statefun_workers")]
assert metrics.recorder is None, "importing made a recorder"
assert not ours(), f"importing registered {ours()}"
made = metrics.install()
assert made is metrics.install() is metrics.make_recorder(["a/b"])
assert len(ours()) == 2, ours()
print(made._interval)
pid = os.fork()
if pid == 0:
    os._exit(0 if metrics.recorder is made and made.typenames == ("a/b",) and not made.active else 1)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
"""


def test_importing_does_nothing_and_install_reads_the_settings() -> None:
    """Importing the metrics (or the server, or the gunicorn hooks) makes no recorder and registers no hook; the
    first install() makes the one recorder, with the flush interval of STATEFUN_METRICS_FLUSH_SECONDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEFUN_", "PROMETHEUS_"))}
    env["STATEFUN_METRICS_FLUSH_SECONDS"] = "0.25"
    done = subprocess.run([sys.executable, "-c", IMPORT_DOES_NOTHING], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.25"


def test_the_metrics_directory_module_does_not_import_the_recorder() -> None:
    """One way: metrics uses multiprocess; multiprocess (the master's half) never imports metrics."""
    tree = ast.parse(Path(multiprocess.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | {node.module or "" for node in ast.walk(tree)
                                              if isinstance(node, ast.ImportFrom)}
    assert not {"metrics", "statefun_workers.metrics"} & imported, imported


@given(st.one_of(st.floats(min_value=0.0, max_value=1e12), st.integers(min_value=0, max_value=1 << 40),
                 st.sampled_from(DURATION_BUCKETS + SIZE_BUCKETS)))
def test_the_bucket_of_a_value_is_where_bisect_would_put_it(value: float) -> None:
    """Prometheus's ``le``: a value equal to a bound belongs to that bound's bucket; above the last, +Inf."""
    for bounds in (DURATION_BUCKETS, SIZE_BUCKETS):
        assert bucket(bounds, value) == bisect_left(bounds, value)
