"""Prometheus metrics of the worker pool: declarations, the per-worker recorder, and the ``/metrics`` body.

Why not prometheus-client's ``Counter``/``Histogram`` on the request path: in multiprocess mode every
update takes a process-wide lock, checks the pid and packs into an mmap, 1–2 µs each; a request updates ~15
series, 25–40 µs in all (measured, ``benchmarks/metrics_hot_path.py``), most of the ~50 µs a request may cost
at 20k requests/s per core. So the request path only adds to plain numbers (the :class:`Recorder`'s
compiled half, ``_tally``: about 0.6 µs per request in all), and a daemon thread writes the cumulative totals
into this worker's files of the multiprocess directory every ``STATEFUN_METRICS_FLUSH_SECONDS``, in
prometheus-client's own file format, so its ``MultiProcessCollector`` adds them up over workers. The worker's
last flush runs at exit (``worker_exiting``), so nothing is lost when a worker is replaced; a scrape flushes its
own worker first, and sees the other workers at most one interval old.

Values written are absolute cumulative totals (never deltas), so a repeated or racing flush can never count
twice, and ``statefun_busy_seconds_total`` is clamped to never go down.

Process model: importing this module does nothing; :func:`install` (called by ``create_app`` through
:func:`make_recorder`, by the gunicorn hooks and by :func:`render`) makes this process's :data:`recorder` once
and registers its fork reset and exit flush. The gunicorn master never records; each worker owns the recorder it
inherited, reset by the fork, started by ``worker_started`` (gunicorn ``post_fork``) or lazily by its first
request. Without ``PROMETHEUS_MULTIPROC_DIR`` (a single process, tests) the recorder uses a private temporary
directory and :func:`render` also exposes prometheus-client's default registry.

Imports flow one way: this module uses ``multiprocess`` (the directory and its collector), never the reverse.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.utils import floatToGoString

from statefun_workers import build_info, multiprocess
from statefun_workers._tally import DURATION_BUCKETS, MAX_ERROR_REASONS, SIZE_BUCKETS, UNKNOWN, Tally, Totals
from statefun_workers.handler import BLOCKING
from statefun_workers.limits import REFUSALS
from statefun_workers.settings import Settings

__all__ = [
    "DURATION_BUCKETS",
    "FLUSH_SECONDS",
    "MAX_ERROR_REASONS",
    "SIZE_BUCKETS",
    "UNKNOWN",
    "Recorder",
    "install",
    "make_recorder",
    "recorder",
    "render",
    "worker_exiting",
    "worker_started",
]

log = logging.getLogger(__name__)

FLUSH_SECONDS = Settings().metrics_flush_seconds
"""Seconds between two flushes of a worker's totals by default (``STATEFUN_METRICS_FLUSH_SECONDS``): how stale a
scrape may be for the other workers."""

OUTGOING_KINDS = ("message", "delayed_message", "cancellation", "egress")

# Family name -> (type, help). Counter families are named without ``_total``, as prometheus-client does.
FAMILIES: dict[str, tuple[str, str]] = {
    "statefun_invocations": ("counter", "Messages handled, by target typename and outcome (ok|error)."),
    "statefun_batches": ("counter", "Requests (batches) handled, by outcome (ok|incomplete_context|error)."),
    "statefun_batch_duration_seconds": ("histogram", "Time to handle one request, parse to serialize."),
    "statefun_state_bytes": (
        "counter",
        "Bytes of state values received (read) and sent in MODIFY (written).",
    ),
    "statefun_errors": ("counter", "Failed requests by StatefunError reason."),
    "statefun_outgoing": ("counter", "Effects sent back: messages, delayed messages, cancellations, egress."),
    "statefun_request_bytes": ("histogram", "Size of request bodies (ToFunction)."),
    "statefun_response_bytes": ("histogram", "Size of response bodies (FromFunction; 0 on error)."),
    "statefun_requests_in_flight": ("gauge", "Requests being handled now, over live workers."),
    "statefun_worker_processes": ("gauge", "Live worker processes."),
    "statefun_busy_seconds": ("counter", "Seconds workers had at least one request in flight."),
    "statefun_worker_exits": ("counter", multiprocess.WORKER_EXITS_HELP),
    "statefun_connections_refused": (
        "counter", "Connections the HTTP layer answered and closed at a bound, by reason (statefun_workers.limits)."),
    "statefun_blocking_threads_busy": (
        "gauge", "Threads running blocking=True batches now, abandoned ones included, over live workers."),
    "statefun_blocking_abandoned": (
        "counter", "blocking=True batches answered at their deadline while their thread ran on."),
}


def _samples(totals: Totals) -> Iterable[tuple[str, str, str, tuple[tuple[str, str], ...], float]]:
    """Yield ``(file prefix, family, sample name, labels, value)`` for every series of one typename."""
    t = (("typename", totals.typename),)
    for outcome, value in (("ok", totals.invocations_ok), ("error", totals.invocations_error)):
        yield "counter", "statefun_invocations", "statefun_invocations_total", t + (("outcome", outcome),), value
    for outcome, value in (
        ("ok", totals.batches_ok),
        ("incomplete_context", totals.batches_incomplete),
        ("error", totals.batches_error),
    ):
        yield "counter", "statefun_batches", "statefun_batches_total", t + (("outcome", outcome),), value
    for direction, value in (("read", totals.state_read), ("written", totals.state_written)):
        yield "counter", "statefun_state_bytes", "statefun_state_bytes_total", t + (("direction", direction),), value
    outgoing = (totals.messages, totals.delayed, totals.cancellations, totals.egresses)
    for kind, value in zip(OUTGOING_KINDS, outgoing, strict=True):
        yield "counter", "statefun_outgoing", "statefun_outgoing_total", t + (("kind", kind),), value
    for reason, value in list(totals.errors.items()):
        yield "counter", "statefun_errors", "statefun_errors_total", t + (("reason", reason),), value
    yield from _histogram(
        "statefun_batch_duration_seconds", t, DURATION_BUCKETS, totals.duration_counts, totals.duration_sum)
    yield from _histogram("statefun_request_bytes", t, SIZE_BUCKETS, totals.request_counts, totals.request_sum)
    yield from _histogram("statefun_response_bytes", t, SIZE_BUCKETS, totals.response_counts, totals.response_sum)


_LE = tuple(floatToGoString(b) for b in DURATION_BUCKETS) + ("+Inf",)  # type: ignore[no-untyped-call]
_SIZE_LE = tuple(floatToGoString(b) for b in SIZE_BUCKETS) + ("+Inf",)  # type: ignore[no-untyped-call]


def _histogram(
    family: str,
    labels: tuple[tuple[str, str], ...],
    bounds: tuple[float, ...],
    counts: list[int],
    total: float,
) -> Iterable[tuple[str, str, str, tuple[tuple[str, str], ...], float]]:
    """One histogram's samples as prometheus-client stores them: per-bucket (not cumulative) counts, _sum."""
    les = _LE if bounds is DURATION_BUCKETS else _SIZE_LE
    for le, count in zip(les, list(counts), strict=True):
        yield "histogram", family, family + "_bucket", labels + (("le", le),), count
    yield "histogram", family, family + "_sum", labels, total


class _FileSink:
    """This worker's files in the multiprocess directory, written with prometheus-client's ``MmapedDict``."""

    def __init__(self, directory: str, pid: int) -> None:
        self.directory = directory
        self.pid = pid
        self._files: dict[str, MmapedDict] = {}
        self._keys: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def write(
        self, prefix: str, family: str, name: str, labels: tuple[tuple[str, str], ...], value: float
    ) -> None:
        """Store an absolute value; the key is the one prometheus-client's own metric would use."""
        key = self._keys.get((name, labels))
        if key is None:
            names = [k for k, _ in labels]
            values = [v for _, v in labels]
            key = self._keys[(name, labels)] = mmap_key(family, name, names, values, FAMILIES[family][1])
        f = self._files.get(prefix)
        if f is None:
            path = os.path.join(self.directory, f"{prefix}_{self.pid}.db")
            f = self._files[prefix] = MmapedDict(path)  # type: ignore[no-untyped-call]
        f.write_value(key, float(value), 0.0)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        for f in self._files.values():
            f.close()  # type: ignore[no-untyped-call]
        self._files.clear()


class Recorder(Tally):
    """Per-worker totals the request path adds to (:class:`~statefun_workers._tally.Tally`, compiled), and
    their periodic flush to the multiprocess files.

    Call :meth:`request_started`, then :meth:`request_finished` or :meth:`request_dropped`, from one thread (the
    worker's event loop); the
    flush thread only reads what they write. The first request starts the recorder if nothing did before.
    """

    def __init__(
        self, *, directory: str | None = None, pid: int | None = None, interval: float | None = FLUSH_SECONDS
    ) -> None:
        """``directory``/``pid``/``interval=None`` (no thread, flush by hand) let tests simulate workers."""
        self._directory = directory
        self._pid = pid
        self._interval = interval
        self.typenames: tuple[str, ...] = ()
        """Bound typenames whose series are zeroed at start (set by :func:`make_recorder`)."""
        self._reset()

    def _reset(self) -> None:
        """Forget everything: the state of a fresh worker (also run in a forked child)."""
        sink = getattr(self, "_sink", None)
        if sink is not None:
            sink.close()  # NOTE: in a forked child these are its own copies of the parent's descriptors.
        Tally.__init__(self, self.start)
        self._busy_flushed = 0.0
        self._sink: _FileSink | None = None
        self._private_dir: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # NOTE: reentrant: start() flushes under it; render() (a thread) and a first request may both start.
        self._lock = threading.RLock()

    @property
    def directory(self) -> str | None:
        """The directory this worker's files are in, once started."""
        return self._sink.directory if self._sink is not None else None

    @property
    def private(self) -> bool:
        """True when no ``PROMETHEUS_MULTIPROC_DIR`` was set and this process uses a directory of its own."""
        return self._private_dir is not None

    def start(self, typenames: Iterable[str] = ()) -> None:
        """Open this worker's files, count it as live, zero the series of ``typenames``, start flushing.

        Zeroed series make ``rate()`` see a function's first requests and give alerts a denominator.
        """
        with self._lock:
            if not self.active:
                self._start(typenames)

    def _start(self, typenames: Iterable[str]) -> None:
        directory = self._directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            os.makedirs(directory, exist_ok=True)
        else:
            directory = self._private_dir = tempfile.mkdtemp(prefix="statefun-metrics-")
        self._sink = _FileSink(directory, self._pid if self._pid is not None else os.getpid())
        for typename in typenames:
            self.totals_of(typename)
        self.active = True
        self._sink.write("gauge_livesum", "statefun_worker_processes", "statefun_worker_processes", (), 1.0)
        self.flush()
        if self._interval:
            self._thread = threading.Thread(target=self._run, name="statefun-metrics-flush", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Final flush and close (worker exit); in-flight gauge files are removed by the master."""
        if not self.active:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self.flush()
        with self._lock:
            self.active = False
            if self._sink is not None:
                self._sink.close()
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)
                self._private_dir = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # NOTE: a failing flush must not kill the thread; log and retry next tick.
                log.exception("flushing metrics failed")

    def flush(self) -> None:
        """Write the totals of the typenames changed since the last flush, the in-flight gauge, busy time."""
        with self._lock:
            sink = self._sink
            if not self.active or sink is None:
                return
            for t in list(self.totals.values()):
                if not t.dirty:
                    continue
                t.dirty = False  # NOTE: cleared before reading, so an update racing with this flush is not lost.
                for sample in _samples(t):
                    sink.write(*sample)
            in_flight = self.in_flight
            busy = self.busy_total
            if in_flight:
                busy += self.clock() - self.busy_since
            # NOTE: the request path may have left in_flight at 0 without adding the busy period yet; clamp so
            # the counter never goes back.
            busy = max(busy, self._busy_flushed)
            self._busy_flushed = busy
            sink.write("counter", "statefun_busy_seconds", "statefun_busy_seconds_total", (), busy)
            for reason, count in list(REFUSALS.items()):
                sink.write("counter", "statefun_connections_refused", "statefun_connections_refused_total",
                           (("reason", reason),), count)
            sink.write("gauge_livesum", "statefun_blocking_threads_busy", "statefun_blocking_threads_busy", (),
                       max(BLOCKING.busy, 0))
            sink.write("counter", "statefun_blocking_abandoned", "statefun_blocking_abandoned_total", (),
                       BLOCKING.abandoned)
            sink.write(
                "gauge_livesum",
                "statefun_requests_in_flight",
                "statefun_requests_in_flight",
                (),
                max(in_flight, 0),
            )


recorder: Recorder | None = None
"""This process's recorder once :func:`install` made it; the server calls its ``request_started()``, then
``request_finished()`` or ``request_dropped()``."""


def install(settings: Settings | None = None) -> Recorder:
    """This process's :data:`recorder`, made on the first call with ``settings`` (else the environment's).

    The first call also registers what the recorder needs from the process: a reset in a forked child (a worker
    starts from zero) and a last flush at exit. Later calls return the same recorder.
    """
    global recorder
    if recorder is None:
        interval = (settings or Settings.from_env()).metrics_flush_seconds
        recorder = made = Recorder(interval=interval)
        os.register_at_fork(after_in_child=made._reset)
        atexit.register(worker_exiting)
    return recorder


def make_recorder(typenames: Iterable[str] = (), settings: Settings | None = None) -> Recorder:
    """The server's per-request hooks (docs/contracts.md): this process's recorder (survives fork).

    ``typenames`` (the bound functions) get their series zeroed when a worker starts.
    """
    made = install(settings)
    made.typenames = tuple(typenames)
    return made


def worker_started() -> None:
    """gunicorn ``post_fork``: count the worker as live at once, zero the bound typenames' series, flush."""
    made = install()
    made.start(made.typenames)


def worker_exiting() -> None:
    """gunicorn ``worker_exit`` (and atexit): flush this worker's last totals before it goes."""
    if recorder is not None:
        recorder.stop()


def render() -> tuple[bytes, str]:
    """The ``/metrics`` response ``(body, content_type)``: Prometheus text format, all workers summed.

    Runs in a thread (the server uses ``asyncio.to_thread``): it reads every file of the directory.
    """
    made = install()
    if not made.active:
        made.start()
    made.flush()
    directory = made.directory
    assert directory is not None
    registry = CollectorRegistry()
    registry.register(multiprocess.LockedCollector(directory))
    # NOTE: not in the files: the same in every worker (all forked from the master that loaded the app).
    registry.register(build_info.BuildInfoCollector())
    body = generate_latest(registry)
    if made.private:
        # NOTE: single process: prometheus-client's own metrics (user, process, GC) live in its registry.
        body += generate_latest(REGISTRY)
    return body, CONTENT_TYPE_LATEST
