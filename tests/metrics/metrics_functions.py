"""Functions served by the metrics integration tests (``STATEFUN_FUNCTIONS=metrics_functions``).

Each message carries an int ``v``; what a function does is a pure function of ``v``, so the test can predict
every effect, and reads the exact figures back from the responses anyway.
"""

from __future__ import annotations

from datetime import timedelta

from statefun_workers import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    message_builder,
)

COUNTER = "test.metrics/counter"
FAILING = "test.metrics/failing"
STATELESS = "test.metrics/stateless"
ECHO = "test.metrics/echo"

functions = StatefulFunctions()


@functions.bind(COUNTER, [ValueSpec(name="count", type=IntType)])
def counter(context: Context, message: Message) -> None:
    """Adds ``v`` to its state; odd ``v`` sends a message, ``v % 3 == 0`` an egress record, ``v % 4 == 0`` a
    delayed message, ``v % 7 == 0`` a cancellation."""
    v = message.as_int()
    context.storage.count = (context.storage.count or 0) + v
    if v % 2:
        context.send(message_builder(target_typename=ECHO, target_id=str(v), int_value=v))
    if v % 3 == 0:
        context.send_egress(
            kafka_egress_message(typename="test.metrics/out", topic="t", key=str(v), value=str(v))
        )
    if v % 4 == 0:
        context.send_after(
            timedelta(seconds=v),
            message_builder(target_typename=ECHO, target_id="d", int_value=v),
            cancellation_token=f"t{v}",
        )
    if v % 7 == 0:
        context.cancel_delayed_message(f"t{v}")


@functions.bind(FAILING)
async def failing(context: Context, message: Message) -> None:
    """Raises on a negative ``v``: the whole batch fails."""
    if message.as_int() < 0:
        raise ValueError("negative")


@functions.bind(STATELESS)
def stateless(context: Context, message: Message) -> None:
    """Does nothing."""


@functions.bind(ECHO)
def echo(context: Context, message: Message) -> None:
    """Does nothing (the target of the counter's messages)."""
