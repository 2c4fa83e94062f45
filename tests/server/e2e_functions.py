"""Functions that only the server tests serve (with the examples): slow, failing and blocking ones.

gunicorn imports this module as ``e2e_functions`` (the tests put this folder on its ``PYTHONPATH``). Messages
are strings; a path in a message is where the function signals the test, so the tests poll files instead of
sleeping.
"""

import asyncio
import gc
import os
import time

from statefun_workers import Context, Message, StatefulFunctions, kafka_egress_message

functions = StatefulFunctions()


def _wait_for(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


@functions.bind(typename="test/slow")
async def slow(context: Context, message: Message) -> None:
    """``"<marker path> <seconds>"``: touch the marker, sleep on the event loop, then emit an egress."""
    marker, seconds = message.as_string().rsplit(" ", 1)
    open(marker, "w").close()
    await asyncio.sleep(float(seconds))
    context.send_egress(kafka_egress_message(typename="test/egress", topic="slow", key="k", value="done"))


@functions.bind(typename="test/fail")
def fail(context: Context, message: Message) -> None:
    raise RuntimeError("secret-detail-that-must-not-leak")


def _block(message: Message) -> None:
    """``"<path>"``: touch ``<path>.started``, then block the thread until ``<path>.release`` exists."""
    path = message.as_string()
    open(path + ".started", "w").close()
    _wait_for(path + ".release")


@functions.bind(typename="test/blocking-pool", blocking=True)
def blocking_pool(context: Context, message: Message) -> None:
    _block(message)


@functions.bind(typename="test/blocking-loop")
def blocking_loop(context: Context, message: Message) -> None:
    _block(message)


@functions.bind(typename="test/hang")
async def hang(context: Context, message: Message) -> None:
    """``"<path>"``: touch ``<path>.started``, await forever; on cancellation touch ``<path>.cancelled``."""
    path = message.as_string()
    open(path + ".started", "w").close()
    try:
        await asyncio.Event().wait()
    finally:
        open(path + ".cancelled", "w").close()


@functions.bind(typename="test/hang-blocking", blocking=True)
def hang_blocking(context: Context, message: Message) -> None:
    """Like ``test/blocking-pool``, but for up to a minute: a thread the batch deadline abandons."""
    path = message.as_string()
    open(path + ".started", "w").close()
    _wait_for(path + ".release", timeout=60.0)


@functions.bind(typename="test/fail-often")
def fail_often(context: Context, message: Message) -> None:
    raise LookupError("another kind of failure")


@functions.bind(typename="test/big-answer")
def big_answer(context: Context, message: Message) -> None:
    """``"<bytes>"``: answer with an egress record of that many bytes."""
    size = int(message.as_string())
    context.send_egress(kafka_egress_message(typename="test/egress", topic="big", key="k", value=b"x" * size))


@functions.bind(typename="test/gc-threshold")
def gc_threshold(context: Context, message: Message) -> None:
    """Answer with an egress record of the worker's ``gc.get_threshold()``."""
    value = ",".join(str(part) for part in gc.get_threshold())
    context.send_egress(kafka_egress_message(typename="test/egress", topic="gc", key="k", value=value))
