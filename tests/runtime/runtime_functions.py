"""Functions only the runtime tests serve (beside the examples), driven by the real StateFun runtime.

gunicorn imports this module as ``runtime_functions`` (the tests put this folder on its ``PYTHONPATH``).
Commands are JSON objects under ``runtime-test/Command``; what the tests check leaves through the egress
``runtime-test/egress`` as Kafka records (topic = what kind of report, key = the reporting address id).
``RUNTIME_TEST_DIR`` is a directory the test and the workers share, for what must outlive one request.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

from statefun_workers import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    message_builder,
)

Command = make_json_type("runtime-test/Command")
PlaygroundRecord = make_json_type("io.statefun.playground/EgressRecord")  # {"topic", "payload"}
Note = make_json_type("runtime-test/Note")
EGRESS = "runtime-test/egress"
COUNTER = "runtime-test/counter"
TTL_SECONDS = 3

functions = StatefulFunctions()


def report(context: Context, topic: str, value: dict[str, Any]) -> None:
    context.send_egress(kafka_egress_message(typename=EGRESS, topic=topic, key=context.address.id,
                                             value=json.dumps(value)))


def inc(target: str, n: int) -> Message:
    return message_builder(target_typename=COUNTER, target_id=target, value={"op": "inc", "n": n},
                           value_type=Command)


@functions.bind(typename=COUNTER, specs=[ValueSpec(name="count", type=IntType)])
def counter(context: Context, message: Message) -> None:
    """The exactly-once workload: increments here or elsewhere, now, later, or cancelled; reports on demand."""
    command = message.as_type(Command)
    op = command["op"]
    if op == "inc":
        context.storage.count = (context.storage.count or 0) + command["n"]
    elif op == "forward":
        context.send(inc(command["to"], command["n"]))
    elif op == "delay":
        context.send_after(timedelta(milliseconds=command["ms"]), inc(command["to"], command["n"]),
                           command.get("token", ""))
    elif op == "cancel":
        context.cancel_delayed_message(command["token"])
    elif op == "report":
        report(context, "counts", {"count": context.storage.count or 0, "round": command["round"]})
    else:
        raise ValueError(f"unknown op {op}")


@functions.bind(typename="runtime-test/fresh", specs=[ValueSpec(name="seen", type=IntType)])
def fresh(context: Context, message: Message) -> None:
    """A state the runtime has not seen before its first call: it learns it from IncompleteInvocationContext."""
    context.storage.seen = (context.storage.seen or 0) + 1
    report(context, "fresh", {"seen": context.storage.seen})


@functions.bind(typename="runtime-test/ttl", specs=[
    ValueSpec(name="written", type=StringType, expire_after_write=timedelta(seconds=TTL_SECONDS)),
    ValueSpec(name="called", type=StringType, expire_after_call=timedelta(seconds=TTL_SECONDS)),
])
def ttl(context: Context, message: Message) -> None:
    """``set`` writes both states; ``get`` reports what is left (each call keeps ``called`` alive)."""
    if message.as_type(Command)["op"] == "set":
        context.storage.written = context.storage.called = "value"
    report(context, "ttl", {"written": context.storage.written, "called": context.storage.called})


@functions.bind(typename="runtime-test/sink")
def sink(context: Context, message: Message) -> None:
    """Takes anything and does nothing: where the ingress tests send what they do not care about."""


@functions.bind(typename="runtime-test/egresses")
def egresses(context: Context, message: Message) -> None:
    """One record of each kind the runner files by topic: playground, Kinesis, and any other typename."""
    id = context.address.id
    context.send_egress(egress_message_builder(target_typename=EGRESS, value={"topic": f"pg-{id}", "payload": id},
                                               value_type=PlaygroundRecord))
    context.send_egress(kinesis_egress_message(typename=EGRESS, stream=f"ks-{id}", partition_key=id, value=id))
    context.send_egress(egress_message_builder(target_typename=EGRESS, value={"note": id}, value_type=Note))


@functions.bind(typename="runtime-test/flaky")
def flaky(context: Context, message: Message) -> None:
    """Fails the first ``fail`` attempts at a message (counted in files: any worker may get a retry)."""
    command = message.as_type(Command)
    attempts = _count_attempt(f"flaky-{context.address.id}")
    if attempts <= command["fail"]:
        raise RuntimeError(f"attempt {attempts} fails on purpose")
    report(context, "flaky", {"attempts": attempts})


@functions.bind(typename="runtime-test/poison")
def poison(context: Context, message: Message) -> None:
    """Never succeeds: what the runtime does with a message no retry can get through."""
    _count_attempt(f"poison-{context.address.id}")
    raise RuntimeError("poison message")


@functions.bind(typename="runtime-crash/crasher")
def crasher(context: Context, message: Message) -> None:
    """Fails while the test's ``crash`` file exists: long enough (call budget) to make the job restart."""
    if os.path.exists(os.path.join(os.environ["RUNTIME_TEST_DIR"], "crash")):
        raise RuntimeError("crashing until the test removes the crash file")
    report(context, "crasher", {"done": True})


def _count_attempt(name: str) -> int:
    """Record one more attempt under ``name`` and return how many there were, across worker processes."""
    directory = os.path.join(os.environ["RUNTIME_TEST_DIR"], name)
    os.makedirs(directory, exist_ok=True)
    n = 1
    while True:
        try:
            os.close(os.open(os.path.join(directory, str(n)), os.O_CREAT | os.O_EXCL))
            return n
        except FileExistsError:
            n += 1
