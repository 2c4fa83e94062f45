"""The bounds on what one client can make a worker spend, and the per-process count of what they refused.

Every resource a client controls has a bound, each a setting (``Settings``) with a safe default:

==========================  ==================================================================================
resource                    bound
==========================  ==================================================================================
header bytes, header count  ``max_header_bytes``, ``max_headers``: 431, connection closed
time to send the head       ``header_timeout``: connection closed (a silent or byte-a-second client included)
time between body bytes     ``body_stall_timeout``, request or answer: connection closed
time for a whole body       ``body_timeout``, from the end of the head: 408, connection closed
open connections            ``max_connections`` per worker: 503 and closed at once (never a silent reset)
declared body length        ``max_request_bytes``: 413 before any body is read, 100-continue or not
request bytes held at once  ``max_buffered_bytes`` per worker: 503, so the runtime retries on another worker
time per batch              ``batch_timeout``: 503 with no effects; the function's task is cancelled
blocking threads            the pool's size: a batch finding every thread busy gets 503 at once
==========================  ==================================================================================

:data:`REFUSALS` counts what the HTTP layer refused, by reason; the metrics export it as
``statefun_connections_refused_total{reason}``. Refusals of batches (413, 503, timeouts) are counted with the
batch's error reason instead (``statefun_errors_total``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource

__all__ = ["CANCEL_ON_DISCONNECT", "CLIENT_GONE", "REFUSALS", "REFUSAL_REASONS", "BufferBudget",
           "connection_cap", "count_refusal", "release_memory", "return_large_buffers_to_os"]

CANCEL_ON_DISCONNECT = "statefun.cancel_on_disconnect"
"""The ASGI scope key under which the app leaves the task the HTTP protocol cancels if the client goes away
before the answer (uvicorn lets an abandoned request run on)."""
CLIENT_GONE = "client disconnected"
"""The message of that cancellation, by which the app tells it from a shutdown's."""

REFUSAL_REASONS = (
    "header_too_large",       # the head grew past max_header_bytes (431)
    "too_many_headers",       # more than max_headers header lines (431)
    "header_timeout",         # the head did not arrive within header_timeout (closed)
    "body_stall",             # no request body byte for body_stall_timeout (408, closed)
    "body_timeout",           # the request body took longer than body_timeout as a whole (408, closed)
    "response_stall",         # the client read nothing of its answer for body_stall_timeout (aborted)
    "too_many_connections",   # over max_connections (503, closed)
    "pipeline_too_deep",      # over http_protocol.MAX_PIPELINED requests queued on one connection (closed)
    "http_version",           # not HTTP/1.0 or HTTP/1.1 (505)
    "transfer_coding",        # a transfer coding other than chunked (501)
    "body_too_large",         # Content-Length over max_request_bytes, seen in the head (413)
    "invalid_request",        # the HTTP parser refused the bytes (400)
)
"""Every reason a connection is refused, so each series exists (at zero) from the start."""

REFUSALS: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
"""This process's refusals so far, by reason (cumulative; the metrics flush reads it)."""


def count_refusal(reason: str) -> None:
    """Count one refusal; ``reason`` is one of :data:`REFUSAL_REASONS`."""
    REFUSALS[reason] += 1


class BufferBudget:
    """The request bytes one worker holds at once: a batch reserves its declared length before reading it.

    A worker's memory grows with the bodies it holds (the body, then the objects decoded from it); without a
    bound, a burst of large batches on one worker takes it past its container's memory limit. A batch that
    would go over the budget is refused with 503, which the runtime retries, usually on another worker. One
    batch on its own is always admitted, so a single body up to ``max_request_bytes`` never fails here.
    Used from one event loop only: no lock.
    """

    __slots__ = ("limit", "held")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self, size: int) -> bool:
        """Hold ``size`` more bytes if the budget allows (or nothing else is held); False to refuse."""
        if self.held and self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held -= size


_SPARE_DESCRIPTORS = 64
"""Descriptors kept free beyond the connections: listening sockets, logs, metrics files, the heartbeat."""


def connection_cap(requested: int) -> int:
    """``requested`` connections, or fewer if this process's descriptor limit cannot hold them.

    Raises the soft limit to the hard one first (what the container allows). Past the descriptor limit the
    kernel's accept fails and a client sees a reset with no answer; below it, the protocol answers 503.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, soft - _SPARE_DESCRIPTORS))


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
_M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()
"""glibc, for the two calls below; None elsewhere (musl, macOS), where they do nothing."""


def return_large_buffers_to_os(threshold: int = 1024 * 1024) -> bool:
    """Make glibc give large buffers (whole request bodies) back to the system when they are freed.

    glibc serves allocations above a threshold with their own mmap, unmapped on free; but it raises that
    threshold each time such a block is freed (up to 32 MiB), after which large bodies come from the heap and
    stay in the worker's RSS when freed: a worker that once held 16 bodies of 32 MiB kept 810 MB. A fixed
    threshold turns that off. False where the C library is not glibc.

    Fixing it also fixes the trim threshold, at glibc's 128 KiB unless set: the heap then shrinks after every
    request that built more than that in objects (a 64 KB JSON state does) and grows again, page faults
    included, on the next; that cost about a fifth of such a request's time. The trim threshold is set to what
    glibc pairs with an mmap threshold, twice it: a worker keeps up to 2 MiB of free heap for the next request.
    """
    if _LIBC is None:
        return False
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(_LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * threshold))


def release_memory() -> None:
    """Free what large batches left behind: collect reference cycles, then give the heap's free pages back to
    the system (glibc's ``malloc_trim``).

    A failed batch's exception holds its frames, and with them the request body, in a reference cycle that
    only a full collection frees (the workers' collections rarely reach the oldest generation); and a body
    read in parts leaves its parts freed in the middle of the heap, which glibc keeps. Both cost a few
    milliseconds, so this runs only once the last large body a worker held is answered.
    """
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
