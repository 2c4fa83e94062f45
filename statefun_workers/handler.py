"""The request-reply protocol: one ToFunction batch in, one FromFunction out. No HTTP here.

For each request: parse the ``ToFunction``; find the function bound to the target's typename; if a declared
state is absent from the request, answer ``IncompleteInvocationContext`` naming it (the runtime registers it and
re-sends the same batch); otherwise run the function once per message, in order, with one shared context and
storage, and answer one ``InvocationResponse`` with every effect. An exception anywhere fails the whole batch:
nothing the function did is answered, and the runtime re-sends the batch later (docs/protocol.md, edge case 12).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

from ._dispatch import Batch, BatchResult, failed, go_on, respond, run_ready
from .errors import BatchTimeoutError, StatefunError
from .functions import StatefulFunctions
from .messages import ReceivedMessage

__all__ = ["BLOCKING", "Batch", "BatchResult", "BlockingThreads", "RequestReplyHandler", "stopped", "timed_out"]


class BlockingThreads:
    """This process's threads running ``blocking=True`` batches: how many are busy, how many were abandoned.

    A thread cannot be stopped from outside: a batch past its deadline is answered at once, but its thread
    runs on until the function returns (it is *abandoned*, and counted). ``busy`` counts those too, so the
    server can refuse new blocking batches (503) when every thread is taken instead of queueing them behind
    hung ones. Updated from the worker threads, hence the lock.
    """

    __slots__ = ("busy", "abandoned", "_lock")

    def __init__(self) -> None:
        self.busy = 0
        self.abandoned = 0
        self._lock = threading.Lock()

    def started(self) -> None:
        with self._lock:
            self.busy += 1

    def finished(self, _: object = None) -> None:
        with self._lock:
            self.busy -= 1

    def abandon(self) -> None:
        with self._lock:
            self.abandoned += 1


BLOCKING = BlockingThreads()
"""This process's blocking threads (the metrics export ``busy`` and ``abandoned``)."""


class RequestReplyHandler:
    """Handles request-reply batches for a registry of functions.

    ``handle_async`` and ``handle_sync`` answer the FromFunction bytes or raise a
    :class:`~statefun_workers.errors.StatefunError`; ``dispatch_async`` never raises one and returns a
    :class:`BatchResult` instead, with the figures the server's metrics need.

    ``executor`` runs the batches of functions bound with ``blocking=True``; by default a thread pool is made
    when first needed.
    """

    def __init__(self, functions: StatefulFunctions | None, *,
                 executor: concurrent.futures.Executor | None = None) -> None:
        if functions is None:
            raise ValueError("functions must be provided.")
        if not isinstance(functions, StatefulFunctions):
            raise TypeError(f"functions must be a StatefulFunctions registry, not {type(functions).__name__}")
        self.functions = functions
        self._by_type = functions._by_type
        self._executor = executor
        self._own_executor = False
        self._local = threading.local()
        self._background: asyncio.AbstractEventLoop | None = None
        self._loops: list[asyncio.AbstractEventLoop] = []
        """Every event loop this handler made (one per thread that called handle_sync for an async function,
        and the helper thread's); closed by close(), or when the handler is garbage-collected."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the event loops and the thread pool this handler made; it must not be used afterwards."""
        _close_loops(self._loops)
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False)

    def __del__(self) -> None:
        # NOTE: a handler dropped without close() still closes its loops (an open loop warns when collected).
        loops = getattr(self, "_loops", None)  # absent when __init__ refused its arguments
        if loops:
            _close_loops(loops)

    # --- the public entry points -------------------------------------------------------------------------

    async def handle_async(self, request_bytes: Any) -> bytes:
        """Answer one request; run async functions on the running event loop."""
        result = await self.dispatch_async(request_bytes)
        if result.error is not None:
            raise result.error
        return result.response

    def handle_sync(self, request_bytes: Any) -> bytes:
        """Answer one request from synchronous code (for example a WSGI view).

        Sync functions run directly, with no event loop at all. Async functions run on an event loop that this
        thread keeps for its next requests, or, when this thread is already running a loop, on a helper
        thread's loop (the official SDK made a new loop for every request, and failed inside a running one).
        """
        result = self.dispatch_sync(request_bytes)
        if result.error is not None:
            raise result.error
        return result.response

    async def dispatch_async(self, request_bytes: Any) -> BatchResult:
        """Answer one request; the error, if any, is in the result rather than raised."""
        done = run_ready(self._by_type, request_bytes)
        if type(done) is BatchResult:
            return done
        return await self.finish_async(done)  # type: ignore[arg-type]

    def start(self, request_bytes: Any) -> BatchResult | Batch:
        """The part of a request that never waits: the result, or the :class:`Batch` that
        :meth:`finish_async` must finish (an async or blocking function, or an awaitable a sync one returned).

        ``dispatch_async`` is ``start`` then ``finish_async``; the server calls them apart, to bound only the
        batches that wait (a plain sync function's batch runs to its end inside ``start``).
        """
        return run_ready(self._by_type, request_bytes)

    async def finish_async(self, batch: Batch) -> BatchResult:
        """Finish a batch :meth:`start` returned, on the running loop (async) or a thread (blocking)."""
        done: Batch | BatchResult = batch
        while type(done) is not BatchResult:
            batch = done  # type: ignore[assignment]
            if batch.pending is not None:  # a sync function returned an awaitable: finish it here, then go on
                pending, batch.pending = batch.pending, None
                try:
                    await pending
                except Exception as ex:
                    return failed(batch, batch.index, ex)
                done = go_on(batch, batch.index + 1)
            elif batch.function.is_async:
                return await self._run_async(batch)
            else:
                BLOCKING.started()
                future = self._blocking_executor().submit(self._finish_sync, batch)
                future.add_done_callback(BLOCKING.finished)
                return await asyncio.wrap_future(future)
        return done

    def dispatch_sync(self, request_bytes: Any) -> BatchResult:
        """Answer one request from synchronous code; the error, if any, is in the result."""
        done = run_ready(self._by_type, request_bytes)
        if type(done) is BatchResult:
            return done
        batch: Batch = done  # type: ignore[assignment]
        if batch.function.is_async:
            return self._run_coroutine(self._run_async(batch))
        return self._finish_sync(batch)

    # --- the steps ---------------------------------------------------------------------------------------

    def _finish_sync(self, batch: Batch) -> BatchResult:
        """Run a sync function's batch to the end from synchronous code (a thread, or handle_sync): from its
        start (a blocking function), or from the awaitable it returned (awaited on an event loop)."""
        done = batch if batch.pending is not None else go_on(batch, 0)
        while type(done) is not BatchResult:
            pending, batch.pending = batch.pending, None
            try:
                self._run_coroutine(_awaited(pending))
            except Exception as ex:
                return failed(batch, batch.index, ex)
            done = go_on(batch, batch.index + 1)
        return done

    async def _run_async(self, batch: Batch) -> BatchResult:
        """Run an async function's batch, awaiting each message in turn on the running loop."""
        function = batch.function
        context, fun, typename, id = batch.context, function.fun, function.typename, batch.context._id
        index = 0
        try:
            for index, invocation in enumerate(batch.invocations):  # noqa: B007 - the except clause reads index
                context._enter(invocation)
                await fun(context, ReceivedMessage(typename, id, invocation.argument))
        except Exception as ex:
            return failed(batch, index, ex)
        return respond(batch)

    def _run_coroutine(self, coroutine: Coroutine[Any, Any, BatchResult]) -> BatchResult:
        """Run a coroutine to completion from synchronous code, without a new event loop per call."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop = getattr(self._local, "loop", None)
            if loop is None or loop.is_closed():
                loop = self._local.loop = asyncio.new_event_loop()
                with self._lock:
                    self._loops.append(loop)
            return loop.run_until_complete(coroutine)
        # This thread already runs a loop (handle_sync called from async code): use the helper thread's.
        return asyncio.run_coroutine_threadsafe(coroutine, self._background_loop()).result()

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._background is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="statefun-handle-sync", daemon=True).start()
                self._background = loop
                self._loops.append(loop)
            return self._background

    def _blocking_executor(self) -> concurrent.futures.Executor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        thread_name_prefix="statefun-blocking")
                    self._own_executor = True
        return self._executor


def timed_out(batch: Batch, seconds: float) -> BatchResult:
    """The result of a batch stopped at its deadline: a 503 with no effects. (A blocking batch's thread cannot
    be stopped; whoever stops the batch counts it in ``BLOCKING.abandon()``.)"""
    function = batch.function
    return stopped(batch, BatchTimeoutError(
        f"function {function.typename} (id {batch.context._id!r}) did not finish its batch of "
        f"{len(batch.invocations)} within {seconds:g} s" + (
            "; its thread runs on, abandoned" if function.blocking else "; it was cancelled"),
        typename=function.typename, id=batch.context._id, invocation=batch.index))


def stopped(batch: Batch, error: StatefunError) -> BatchResult:
    """The result of a batch stopped for ``error`` (its deadline, the client went away, an overload).

    A new result, not the batch's own: an abandoned thread may still finish the batch and fill that one.
    """
    result = batch.result
    return BatchResult(error=error, outcome="error", typename=result.typename, id=result.id,
                       invocations=result.invocations, state_bytes_read=result.state_bytes_read)


def _close_loops(loops: list[asyncio.AbstractEventLoop]) -> None:
    for loop in loops:
        if loop.is_running():  # the helper thread's loop: stop it from its own thread, then close
            loop.call_soon_threadsafe(loop.stop)
            while loop.is_running():
                time.sleep(0.001)
        if not loop.is_closed():
            loop.close()
    loops.clear()


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
