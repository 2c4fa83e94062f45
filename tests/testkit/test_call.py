"""statefun_workers.testing.call: one batch through the real handler, its effects as plain objects."""

from __future__ import annotations

from datetime import timedelta

import pytest

from statefun_workers import (
    Context,
    FloatType,
    FunctionError,
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
from statefun_workers._proto.request_reply_pb2 import FromFunction
from statefun_workers.handler import BatchResult, RequestReplyHandler
from statefun_workers.testing import Address, Delayed, Flow, RuntimeWouldFail, Sent, Value, call

Order = make_json_type("test/Order")
functions = StatefulFunctions()


@functions.bind("test/echo", specs=[ValueSpec("count", IntType), ValueSpec("last", StringType)])
def echo(context: Context, message: Message) -> None:
    """Counts messages, remembers the last string, forgets it on "forget", and reports where it was called from."""
    text = message.as_string()
    context.storage.count = (context.storage.count or 0) + 1
    if text == "forget":
        del context.storage.last
    else:
        context.storage.last = text
    caller = context.caller
    context.send(message_builder("test/sink", caller.id if caller else "ingress", str_value=f"{text}"))


@functions.bind("test/effects")
def effects(context: Context, message: Message) -> None:
    """One of every effect."""
    context.send_after(timedelta(seconds=2), message_builder("test/sink", "later", int_value=7), "t1")
    context.send_after(timedelta(0), message_builder("test/sink", "now", int_value=8))
    context.cancel_delayed_message("t0")
    context.send_egress(kafka_egress_message("test/kafka", "topic-a", "v", key="k"))
    context.send_egress(kafka_egress_message("test/kafka", "topic-b", 5))
    context.send_egress(kinesis_egress_message("test/kinesis", "stream-a", b"\x00\x01", "pk",
                                               explicit_hash_key="123"))
    context.send_egress(egress_message_builder("test/generic", {"a": 1}, Order))


@functions.bind("test/twice")
def twice(context: Context, message: Message) -> None:
    for _ in range(2):
        context.send_after(timedelta(seconds=1), message_builder("test/sink", "x", int_value=1), "same")


@functions.bind("test/negative")
def negative(context: Context, message: Message) -> None:
    context.send_after(timedelta(milliseconds=-1), message_builder("test/sink", "x", int_value=1))


@functions.bind("test/sink")
def sink(context: Context, message: Message) -> None:
    """Takes anything; an int 0 is a bug it divides by."""
    if message.is_int():
        1 / message.as_int()


@functions.bind("test/async", specs=[ValueSpec("seen", IntType)])
async def asynchronous(context: Context, message: Message) -> None:
    context.storage.seen = (context.storage.seen or 0) + message.as_int()


def test_state_in_state_out_with_what_was_written_and_deleted() -> None:
    effects = call(functions, "test/echo", "a", "hello", "forget", state={"count": 40, "last": "before"})
    assert effects.state == {"count": 42}
    assert effects.written == {"count": 42}
    assert effects.deleted == {"last"}
    assert effects.messages == [Sent(Address("test/sink", "ingress"), Value(StringType.typename, b"\n\x05hello")),
                                Sent(Address("test/sink", "ingress"), Value(StringType.typename, b"\n\x06forget"))]
    assert [m.value.value for m in effects.messages] == ["hello", "forget"]


def test_absent_state_has_no_value_and_the_caller_is_passed() -> None:
    effects = call(functions, "test/echo", "a", "hi", caller=("test/other", "b"))
    assert effects.state == {"count": 1, "last": "hi"}
    assert effects.messages[0].to == Address("test/sink", "b")


def test_it_goes_through_the_handler_with_the_state_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = []
    real = RequestReplyHandler.dispatch_sync

    def spy(self: RequestReplyHandler, request: bytes) -> object:
        result = real(self, request)
        outcomes.append(result.outcome)
        return result

    monkeypatch.setattr(RequestReplyHandler, "dispatch_sync", spy)
    call(functions, "test/echo", "a", "hi")
    assert outcomes == ["incomplete_context", "ok"]
    outcomes.clear()
    call(functions, "test/effects", "a", "hi")  # no state: nothing to ask for
    assert outcomes == ["ok"]


def test_every_effect_decoded() -> None:
    result = call(functions, "test/effects", "a", 1)
    assert result.delayed == [
        Delayed(timedelta(seconds=2), Address("test/sink", "later"), Value(IntType.typename, b"\x0d\x07\0\0\0"), "t1"),
        Delayed(timedelta(0), Address("test/sink", "now"), Value(IntType.typename, b"\x0d\x08\0\0\0"), None)]
    assert result.cancelled == ["t0"]
    kafka_a, kafka_b, kinesis, generic = result.egress
    assert (kafka_a.egress, kafka_a.kafka.topic, kafka_a.kafka.key, kafka_a.kafka.value) == (
        "test/kafka", "topic-a", "k", b"v")
    assert (kafka_b.kafka.key, kafka_b.kafka.value) == (None, b"\0\0\0\x05")
    assert kinesis.kinesis.stream == "stream-a" and kinesis.kinesis.partition_key == "pk"
    assert (kinesis.kinesis.value, kinesis.kinesis.explicit_hash_key) == (b"\x00\x01", "123")
    assert generic.kafka is None and generic.kinesis is None and generic.as_type(Order) == {"a": 1}


def test_two_pending_messages_with_one_token_would_fail_the_job() -> None:
    with pytest.raises(RuntimeWouldFail, match="token 'same'.*fails the job"):
        call(functions, "test/twice", "a", 1)


def test_a_negative_delay_fails_at_the_call_saying_what_the_runtime_would_do() -> None:
    with pytest.raises(FunctionError) as failed:
        call(functions, "test/negative", "a", 1)
    assert "the runtime would fail the job" in str(failed.value.__cause__)


def test_async_functions_and_typed_messages() -> None:
    assert call(functions, "test/async", "a", 2, 3).state == {"seen": 5}
    assert call(functions, "test/async", "a", message_builder("test/async", "a", int_value=4)).state == {"seen": 4}


def test_mistakes_in_the_test_itself_are_named() -> None:
    with pytest.raises(ValueError, match="test/echo has no state nope; it declares count, last"):
        call(functions, "test/echo", "a", "x", state={"nope": 1})
    with pytest.raises(TypeError, match="FloatType or DoubleType"):
        call(functions, "test/async", "a", 1.5)
    with pytest.raises(TypeError, match="test/Order"):
        Value(IntType.typename, b"").as_type(Order)
    assert call(functions, "test/sink", "a", 1.5, type=FloatType).messages == []


def test_a_failing_function_fails_the_call_with_its_exception() -> None:
    with pytest.raises(FunctionError, match="test/sink .* failed on message 2 of 2: ZeroDivisionError"):
        call(functions, "test/sink", "a", 1, 0)


def test_a_function_that_keeps_asking_for_state_would_loop_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    reply = FromFunction()
    reply.incomplete_invocation_context.missing_values.add(state_name="count", type_typename=IntType.typename)
    answering(monkeypatch, reply)
    with pytest.raises(RuntimeWouldFail, match="IncompleteInvocationContext 3 times in a row.*forever"):
        call(functions, "test/echo", "a", "x")


def test_a_state_of_another_type_reaches_the_function_as_it_is() -> None:
    with pytest.raises(FunctionError) as failed:
        call(functions, "test/echo", "a", "x", state={"count": Value(StringType.typename, b"\n\x01x")})
    assert "Type mismatch" in str(failed.value.__cause__)


def answering(monkeypatch: pytest.MonkeyPatch, reply: FromFunction) -> None:
    """Make every handler answer ``reply``: the kit checks the answer's bytes as the runtime would."""
    monkeypatch.setattr(RequestReplyHandler, "dispatch_sync",
                        lambda self, request: BatchResult(response=reply.SerializeToString()))


def test_an_answer_with_a_negative_delay_fails_as_in_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    reply = FromFunction()
    delayed = reply.invocation_result.delayed_invocations.add(delay_in_ms=-5)
    delayed.target.namespace, delayed.target.type, delayed.target.id = "test", "sink", "x"
    answering(monkeypatch, reply)
    with pytest.raises(RuntimeWouldFail, match=r"negative delay \(-5 ms\): the runtime fails the job"):
        call(functions, "test/effects", "a", "x")


def test_an_answer_cancelling_without_a_token_fails_the_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    reply = FromFunction()
    reply.invocation_result.delayed_invocations.add(is_cancellation_request=True)
    answering(monkeypatch, reply)
    with pytest.raises(RuntimeWouldFail, match="cancellation without a token: the runtime fails the job"):
        Flow(functions).send("test/effects", "a", "x")
