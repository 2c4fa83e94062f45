"""What the differential test (test_runtime_testkit.py) serves both to the test kit and to the real runtime.

``served`` is the example functions and a workload function (``testkit-diff/node``), each wrapped so that
every invocation ends with one record on the ``acks`` topic (the test counts them to know when the runtime has
settled) and so that a ``testkit-diff/Report`` message makes any address report its state as JSON on the
``state`` topic instead of running the function. The wrapped functions keep their ValueSpecs, so the runtime
registers the same state as for the bare ones.

gunicorn imports this as ``tests.runtime.testkit_functions:served`` (the repository is on its PYTHONPATH).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import examples
from statefun_workers import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    kafka_egress_message,
    make_json_type,
    message_builder,
)
from statefun_workers.functions import StatefulFunction

NODE = "testkit-diff/node"
OUT = "testkit-diff/out"
"""The workload's own egress."""
ACKS = "testkit-diff/acks"
"""One record per invocation (topic ``acks``) and the state reports (topic ``state``)."""
Command = make_json_type("testkit-diff/Command")
Report = make_json_type("testkit-diff/Report")

workload = StatefulFunctions()


def add(id: str, n: int) -> Message:
    return message_builder(NODE, id, value={"op": "add", "n": n}, value_type=Command)


@workload.bind(NODE, specs=[ValueSpec("total", IntType),
                            ValueSpec("last", StringType, expire_after_call=timedelta(hours=1))])
def node(context: Context, message: Message) -> None:
    """One command: change the total, send an add elsewhere now or later, cancel, or tell the total."""
    command = message.as_type(Command)
    op = command["op"]
    me = context.address.id
    if op == "add":
        context.storage.total = (context.storage.total or 0) + command["n"]
    elif op == "set":
        context.storage.total = command["n"]
    elif op == "delete":
        del context.storage.total
    elif op == "send":
        context.send(add(command["to"], command["n"]))
    elif op == "delay":
        context.send_after(timedelta(milliseconds=command["ms"]), add(command["to"], command["n"]),
                           command.get("token", ""))
    elif op == "cancel":
        context.cancel_delayed_message(command["token"])
    elif op == "tell":
        context.send_egress(kafka_egress_message(OUT, "totals", str(context.storage.total), key=me))
    else:
        raise ValueError(f"unknown op {op}")
    context.storage.last = op


TTL = "testkit-diff/ttl"
TTL_SECONDS = 4


@workload.bind(TTL, specs=[ValueSpec("written", StringType, expire_after_write=timedelta(seconds=TTL_SECONDS)),
                           ValueSpec("called", StringType, expire_after_call=timedelta(seconds=TTL_SECONDS))])
def expiring(context: Context, message: Message) -> None:
    """``set`` writes both states; anything else is just a call."""
    if message.as_string() == "set":
        context.storage.written = context.storage.called = "value"


def _wrapped(function: StatefulFunction) -> Callable[[Context, Message], None]:
    fun, names = function.fun, [spec.name for spec in function.specs]

    def wrapped(context: Context, message: Message) -> None:
        address = f"{context.address.typename}/{context.address.id}"
        if message.is_type(Report):
            state: dict[str, Any] = {name: getattr(context.storage, name) for name in names}
            context.send_egress(kafka_egress_message(ACKS, "state", json.dumps(state, sort_keys=True), key=address))
        else:
            fun(context, message)
        context.send_egress(kafka_egress_message(ACKS, "acks", message.value_typename(), key=address))

    return wrapped


served = StatefulFunctions()
for _registry in (examples.functions, workload):
    for _function in _registry.functions.values():
        served.register(_function.typename, _wrapped(_function), _function.specs)
