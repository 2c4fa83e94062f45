"""What the request path adds up for the metrics: per-typename totals, requests in flight, busy time.

This is the part of ``metrics.Recorder`` that runs on every request, so setup.py compiles it with mypyc
(plain attribute adds on native objects, a few hundred instructions per request instead of several thousand
interpreted). It knows nothing of Prometheus: ``metrics`` turns the totals into samples and writes them from
its flush thread.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Final

from mypy_extensions import mypyc_attr

from ._dispatch import BatchResult

__all__ = ["DURATION_BUCKETS", "MAX_ERROR_REASONS", "NOT_DISPATCHED", "SIZE_BUCKETS", "UNKNOWN", "Tally",
           "Totals", "bucket"]

DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)
"""Upper bounds of ``statefun_batch_duration_seconds``: a simple batch takes 20–100 µs, a slow one seconds."""

SIZE_BUCKETS: Final[tuple[float, ...]] = tuple(float(4**k * 64) for k in range(10)) + (32.0 * 1024 * 1024,)
"""Upper bounds (bytes) of the request/response size histograms: 64 B × 4^k up to 16 MiB, then 32 MiB."""

UNKNOWN = "unknown"
"""``typename`` label of a request that named no bound function (refused before dispatch)."""

NOT_DISPATCHED = "not_dispatched"
"""``reason`` label of a request the core never saw (too large, unreadable body, a server bug)."""

MAX_ERROR_REASONS = 16
"""Distinct ``reason`` label values per typename; more collapse into ``other`` (bounded cardinality)."""


def bucket(bounds: tuple[float, ...], value: float) -> int:
    """The histogram bucket of ``value``: the index of the first bound >= value, ``len(bounds)`` for +Inf.

    PERF: a linear scan, because nearly every value falls in the first few buckets; compiled, it beats a
    call to ``bisect`` (which compares boxed numbers).
    """
    index = 0
    for bound in bounds:
        if value <= bound:
            return index
        index += 1
    return index


class Totals:
    """Cumulative figures of one typename in this worker; only the request path writes them."""

    def __init__(self, typename: str) -> None:
        self.typename = typename
        self.dirty = True
        """Changed since the flush thread last wrote it (that thread clears it before reading)."""
        self.batches_ok = 0
        self.batches_incomplete = 0
        self.batches_error = 0
        self.invocations_ok = 0
        self.invocations_error = 0
        self.state_read = 0
        self.state_written = 0
        self.messages = 0
        self.delayed = 0
        self.cancellations = 0
        self.egresses = 0
        self.duration_counts = [0] * (len(DURATION_BUCKETS) + 1)
        """Per-bucket (not cumulative) counts, as prometheus-client stores a histogram; the last is +Inf."""
        self.duration_sum = 0.0
        self.request_counts = [0] * (len(SIZE_BUCKETS) + 1)
        self.request_sum = 0
        self.response_counts = [0] * (len(SIZE_BUCKETS) + 1)
        self.response_sum = 0
        self.errors: dict[str, int] = {}

    def add(self, result: BatchResult | None, seconds: float, request_bytes: int) -> None:
        """Count one answered request; ``result`` None stands for one the core never saw."""
        if result is None:
            self.batches_error += 1
            self._error(NOT_DISPATCHED)
            response_size = 0
        else:
            outcome = result.outcome
            if outcome == "ok":
                self.batches_ok += 1
                self.invocations_ok += result.invocations
            elif outcome == "incomplete_context":
                self.batches_incomplete += 1
            else:
                self.batches_error += 1
                self.invocations_error += result.invocations
                error = result.error
                self._error(error.reason if error is not None else "error")
            self.state_read += result.state_bytes_read
            self.state_written += result.state_bytes_written
            self.messages += result.messages
            self.delayed += result.delayed
            self.cancellations += result.cancellations
            self.egresses += result.egresses
            response_size = len(result.response)
        self.duration_counts[bucket(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds
        if request_bytes >= 0:
            self.request_counts[bucket(SIZE_BUCKETS, request_bytes)] += 1
            self.request_sum += request_bytes
        self.response_counts[bucket(SIZE_BUCKETS, response_size)] += 1
        self.response_sum += response_size
        self.dirty = True

    def _error(self, reason: str) -> None:
        errors = self.errors
        if reason not in errors and len(errors) >= MAX_ERROR_REASONS:
            reason = "other"
        errors[reason] = errors.get(reason, 0) + 1


@mypyc_attr(allow_interpreted_subclasses=True)
class Tally:
    """The request path's side of the recorder: call both methods from the worker's event loop only.

    ``start`` is called by the first request when the tally is not ``active`` yet (``metrics.Recorder`` opens
    its files and starts flushing there).
    """

    def __init__(self, start: Callable[[], None], clock: Callable[[], float] = perf_counter) -> None:
        self._start_hook = start
        self.clock = clock
        """The clock of ``busy_since`` and ``busy_total`` (tests replace it)."""
        self.active = False
        self.in_flight = 0
        self.busy_since = 0.0
        """When ``in_flight`` last went from 0 to 1 (``perf_counter``)."""
        self.busy_total = 0.0
        """Seconds with at least one request in flight, up to the last time ``in_flight`` went back to 0."""
        self.totals: dict[str | None, Totals] = {}

    def request_started(self) -> None:
        """A request entered the worker (call before reading its body)."""
        if self.in_flight == 0:
            if not self.active:
                self._start_hook()
            self.busy_since = self.clock()
        self.in_flight += 1

    def request_finished(self, result: BatchResult | None, seconds: float, request_bytes: int = -1) -> None:
        """A request left the worker: ``seconds`` from arrival to answer, ``request_bytes`` the body size if
        known; ``result`` is None when the core never saw the request (too large, unreadable body, a bug)."""
        self._left()
        self.totals_of(None if result is None else result.typename).add(result, seconds, request_bytes)

    def request_dropped(self) -> None:
        """A request left the worker before its body was whole (the client went away): not a batch."""
        self._left()

    def _left(self) -> None:
        """One request fewer in flight; the busy period ends with the last one."""
        self.in_flight -= 1
        if self.in_flight == 0:
            self.busy_total += self.clock() - self.busy_since

    def totals_of(self, typename: str | None) -> Totals:
        """The totals of ``typename`` (None: requests that named no bound function), made when first seen."""
        totals = self.totals.get(typename)
        if totals is None:
            totals = self.totals[typename] = Totals(typename or UNKNOWN)
        return totals
