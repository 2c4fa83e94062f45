"""One test per function-side edge case of docs/protocol.md ("Edge cases"), plus where ours differs on purpose.

Where the official SDK is right, ours is compared with it (``oracle``: same outcome, same bytes). Where ours is
meant to differ, the test says so in its docstring, with the reason, and asserts our documented behaviour.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from datetime import timedelta

import pytest
import statefun as official
from statefun.kafka_egress_pb2 import KafkaProducerRecord
from statefun.kinesis_egress_pb2 import KinesisEgressRecord
from statefun.request_reply_pb2 import FromFunction, ToFunction, TypedValue

from . import harness
from .harness import handle, to_function, typed

ours = harness.ours

MODIFY = FromFunction.PersistedValueMutation.MODIFY
DELETE = FromFunction.PersistedValueMutation.DELETE
TARGET = ("org.foo", "f", "7")
STR_ARG = typed(official.StringType, "hi")


def errors():
    import statefun_workers.errors as e

    return e


JSON_TYPENAMES = ("org.foo/J", "org.foo/Thing")
"""The JSON types these tests define: their values compare as values, not bytes (docs/json.md)."""


def run_both(build, body: bytes):
    """Bind ``build(sf, observed)`` on both implementations, handle ``body``; compare; return ours' outcome."""
    outcomes = []
    for sf in (official, ours):
        observed: list = []
        functions = build(sf, observed)
        handler = sf.RequestReplyHandler(functions)
        out = harness.Outcome()
        try:
            out.response = handler.handle_sync(body)
        except Exception as exc:  # noqa: BLE001 - compared below
            out.error = exc
        finally:
            harness.release_ours_handler(handler)
        out.observations = [harness.describe(o) for o in observed]
        outcomes.append(out)
    harness.compare_outcomes(outcomes[0], outcomes[1], "oracle", json_typenames=JSON_TYPENAMES)
    return outcomes[1]


def single(typename="org.foo/f", specs=lambda sf: [], fun=None):
    """A builder for ``run_both``: one function whose body is ``fun(sf, context, message, observed)``."""

    def build(sf, observed):
        functions = sf.StatefulFunctions()
        functions.register(typename, lambda c, m: fun(sf, c, m, observed), specs(sf))
        return functions

    return build


def result_of(response: bytes):
    return FromFunction.FromString(response).invocation_result


# --------------------------------------------------------------------------------------------------------------
# edge cases 1-5
# --------------------------------------------------------------------------------------------------------------


def test_01_empty_batch_answers_nothing():
    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: o.append("ran")),
                   to_function(TARGET, states=[("a", None)]))
    assert out.response == b"" and out.observations == []


def test_01_empty_batch_with_missing_state_still_asks_for_it():
    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: None), to_function(TARGET))
    assert [v.state_name for v in FromFunction.FromString(out.response).incomplete_invocation_context
            .missing_values] == ["a"]


def test_02_missing_state_lists_only_absent_specs_and_runs_nothing():
    def specs(sf):
        return [sf.ValueSpec("present", sf.IntType),
                sf.ValueSpec("gone_call", sf.make_json_type("org.foo/J"), expire_after_call=timedelta(minutes=5)),
                sf.ValueSpec("gone_write", sf.LongType, expire_after_write=timedelta(milliseconds=1500)),
                sf.ValueSpec("gone_plain", sf.BoolType)]

    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: o.append("ran")),
                   to_function(TARGET, states=[("present", typed(official.IntType, 1))],
                               invocations=[(None, STR_ARG)] * 3))
    assert out.observations == []
    missing = FromFunction.FromString(out.response).incomplete_invocation_context.missing_values
    assert [(m.state_name, m.type_typename, m.expiration_spec.mode, m.expiration_spec.expire_after_millis)
            for m in missing] == [
        ("gone_call", "org.foo/J", FromFunction.ExpirationSpec.AFTER_INVOKE, 300_000),
        ("gone_write", "io.statefun.types/long", FromFunction.ExpirationSpec.AFTER_WRITE, 1500),
        ("gone_plain", "io.statefun.types/bool", FromFunction.ExpirationSpec.NONE, 0),
    ]
    assert all(m.HasField("expiration_spec") for m in missing)


def test_03_state_sent_by_name_only_is_present_without_value():
    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: o.append(c.storage.a)),
                   to_function(TARGET, states=[("a", None)], invocations=[(None, STR_ARG)]))
    assert out.observations == ["None"] and out.response == b""


@pytest.mark.parametrize("key,zero", [("bool", False), ("int", 0), ("long", 0), ("float", 0.0), ("double", 0.0),
                                      ("string", "")])
def test_04_has_value_false_is_none_and_empty_bytes_is_the_zero_value(key, zero):
    tn = harness.typename_of(key)
    specs = lambda sf: [sf.ValueSpec("a", harness.type_for(sf, key)),  # noqa: E731
                        sf.ValueSpec("b", harness.type_for(sf, key))]
    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: o.extend([c.storage.a, c.storage.b])),
                   to_function(TARGET, states=[("a", TypedValue(typename=tn, has_value=False, value=b"")),
                                               ("b", TypedValue(typename=tn, has_value=True, value=b""))],
                               invocations=[(None, STR_ARG)]))
    assert out.observations == ["None", harness.describe(zero)]


def test_04_message_has_value_false_vs_empty_bytes():
    def fun(sf, c, m, o):
        o.extend([m.raw_value(), m.as_int(), m.is_int(), m.value_typename()])

    tn = official.IntType.typename
    out = run_both(single(fun=fun), to_function(TARGET, invocations=[
        (None, TypedValue(typename=tn, has_value=False)), (None, TypedValue(typename=tn, has_value=True))]))
    assert out.observations == ["None", "None", "bool:True", "str:'io.statefun.types/int'",
                                "bytes:", "int:0", "bool:True", "str:'io.statefun.types/int'"]


def test_05_assigning_none_is_refused_and_del_is_a_delete():
    def fun(sf, c, m, o):
        try:
            c.storage.a = None
        except ValueError:
            o.append("refused")
        del c.storage.a

    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=fun),
                   to_function(TARGET, states=[("a", typed(official.IntType, 3))], invocations=[(None, STR_ARG)]))
    assert out.observations == ["str:'refused'"]
    (mutation,) = result_of(out.response).state_mutations
    assert mutation.mutation_type == DELETE and mutation.state_name == "a" and not mutation.HasField("state_value")


# --------------------------------------------------------------------------------------------------------------
# edge cases 7-13
# --------------------------------------------------------------------------------------------------------------


def test_07_unknown_received_state_is_ignored_and_never_mutated():
    def fun(sf, c, m, o):
        for op in (lambda: c.storage.old, lambda: setattr(c.storage, "old", 1), lambda: delattr(c.storage, "old")):
            try:
                op()
            except AttributeError:
                o.append("AttributeError")
        c.storage.a = 1

    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=fun),
                   to_function(TARGET, states=[("old", typed(official.StringType, "x")), ("a", None)],
                               invocations=[(None, STR_ARG)]))
    assert out.observations == ["str:'AttributeError'"] * 3
    assert [m.state_name for m in result_of(out.response).state_mutations] == ["a"]


def test_08_type_mismatch_raises_only_when_read():
    specs = lambda sf: [sf.ValueSpec("a", sf.IntType), sf.ValueSpec("b", sf.IntType)]  # noqa: E731
    body = to_function(TARGET, states=[("a", typed(official.StringType, "not an int")), ("b", None)],
                       invocations=[(None, STR_ARG)])

    def untouched(sf, c, m, o):
        c.storage.b = 1

    out = run_both(single(specs=specs, fun=untouched), body)
    assert [m.state_name for m in result_of(out.response).state_mutations] == ["b"]

    def reads(sf, c, m, o):
        c.storage.a  # noqa: B018

    out = run_both(single(specs=specs, fun=reads), body)
    assert isinstance(harness.root_error(out.error), TypeError)


def test_08_type_mismatch_can_be_overwritten_without_reading():
    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: setattr(c.storage, "a", 5)),
                   to_function(TARGET, states=[("a", typed(official.StringType, "x"))], invocations=[(None, STR_ARG)]))
    (mutation,) = result_of(out.response).state_mutations
    assert mutation.state_value == typed(official.IntType, 5)


def test_09_mutation_typename_is_the_spec_typename():
    specs = lambda sf: [sf.ValueSpec("j", sf.make_json_type("org.foo/Thing")),  # noqa: E731
                        sf.ValueSpec("d", sf.DoubleType)]

    def fun(sf, c, m, o):
        c.storage.j = {"k": [1, 2]}
        c.storage.d = 2  # an int into a double: stored as the double type
    out = run_both(single(specs=specs, fun=fun),
                   to_function(TARGET, states=[("j", None), ("d", None)], invocations=[(None, STR_ARG)]))
    by_name = {m.state_name: m for m in result_of(out.response).state_mutations}
    assert by_name["j"].state_value.typename == "org.foo/Thing"
    assert by_name["d"].state_value == typed(official.DoubleType, 2.0)
    assert all(m.state_value.has_value for m in by_name.values())


def test_10_dirty_tracking():
    specs = lambda sf: [sf.ValueSpec(n, sf.IntType) for n in ("read", "same", "twice", "absent_del", "untouched")]  # noqa: E731,E501

    def fun(sf, c, m, o):
        s = c.storage
        o.append(s.read)
        s.same = s.same  # writing the same value still modifies
        s.twice = 1
        s.twice = 2  # one final mutation per state
        del s.absent_del  # deleting an absent value still deletes

    states = [("read", typed(official.IntType, 1)), ("same", typed(official.IntType, 2)), ("twice", None),
              ("absent_del", None), ("untouched", typed(official.IntType, 9))]
    out = run_both(single(specs=specs, fun=fun), to_function(TARGET, states=states, invocations=[(None, STR_ARG)]))
    muts = {m.state_name: m for m in result_of(out.response).state_mutations}
    assert sorted(muts) == ["absent_del", "same", "twice"]
    assert muts["same"].mutation_type == MODIFY and muts["same"].state_value == typed(official.IntType, 2)
    assert muts["twice"].state_value == typed(official.IntType, 2)
    assert muts["absent_del"].mutation_type == DELETE


@pytest.mark.parametrize("sizes", [(4095, 4096), (1, 200_000, 3), (16_383, 16_384, 2_097_152)])
def test_10_large_state_values_are_written_as_the_official_sdk_writes_them(sizes):
    """Large values, mixed with small ones in one response, around the lengths where a varint grows a byte."""
    names = [f"s{i}" for i in range(len(sizes))]
    specs = lambda sf: [sf.ValueSpec(name, sf.StringType) for name in names]  # noqa: E731

    def fun(sf, c, m, o):
        for name, size in zip(names, sizes, strict=True):
            setattr(c.storage, name, name[-1] * size)
        c.send(sf.message_builder(target_typename="org.foo/g", target_id="1", str_value="after the states"))

    out = run_both(single(specs=specs, fun=fun),
                   to_function(TARGET, states=[(name, None) for name in names], invocations=[(None, STR_ARG)]))
    written = {m.state_name: m.state_value for m in result_of(out.response).state_mutations}
    wrapper_bytes = lambda size: size + 1 + (size.bit_length() + 6) // 7 if size else 0  # noqa: E731
    assert {name: len(value.value) for name, value in written.items()} == {
        name: wrapper_bytes(size) for name, size in zip(names, sizes, strict=True)}


def test_11_storage_is_shared_within_a_batch():
    def fun(sf, c, m, o):
        c.storage.n = (c.storage.n or 0) + m.as_int()
        o.append(c.storage.n)

    specs = lambda sf: [sf.ValueSpec("n", sf.LongType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=fun),
                   to_function(TARGET, states=[("n", None)],
                               invocations=[(None, typed(official.IntType, i)) for i in (1, 2, 3)]))
    assert out.observations == ["int:1", "int:3", "int:6"]
    (mutation,) = result_of(out.response).state_mutations
    assert mutation.state_value == typed(official.LongType, 6)


@pytest.mark.parametrize("failing", [0, 2])
def test_12_exception_in_invocation_k_fails_the_batch_with_no_effects(failing):
    """Ours raises ``FunctionError`` (status 500) with the user's exception as ``__cause__`` and the position."""

    class Boom(Exception):
        pass

    def fun(sf, c, m, o):
        c.storage.n = m.as_int()
        c.send(sf.message_builder("org.foo/g", "1", int_value=1))
        c.send_egress(sf.kafka_egress_message("e/k", "t", "v"))
        if m.as_int() == failing:
            raise Boom("no")

    specs = lambda sf: [sf.ValueSpec("n", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=fun),
                   to_function(TARGET, states=[("n", None)],
                               invocations=[(None, typed(official.IntType, i)) for i in range(4)]))
    assert out.response is None
    assert isinstance(out.error, errors().FunctionError)
    assert isinstance(out.error.__cause__, Boom)
    assert out.error.invocation == failing
    assert out.error.status == 500
    # the same handler answers the next request normally: nothing of the failed batch is left behind
    functions = single(specs=specs, fun=lambda sf, c, m, o: None)(ours, [])
    assert handle(ours, functions, to_function(TARGET, states=[("n", None)], invocations=[(None, STR_ARG)])) == b""


def test_12_dispatch_async_returns_the_error_and_no_response():
    def fun(sf, c, m, o):
        c.send(sf.message_builder("org.foo/g", "1", int_value=1))
        raise RuntimeError("x")

    functions = single(fun=fun)(ours, [])
    handler = ours.RequestReplyHandler(functions)
    result = harness.run_coro(handler.dispatch_async(to_function(TARGET, invocations=[(None, STR_ARG)])))
    assert result.response == b"" and result.outcome == "error"
    assert isinstance(result.error, errors().FunctionError)


def test_13_handler_is_stateless_and_concurrent_batches_do_not_mix():
    """The same batch may arrive twice, concurrently; interleaved async batches must not share anything."""

    def build(sf):
        functions = sf.StatefulFunctions()

        @functions.bind("org.foo/f", [sf.ValueSpec("n", sf.IntType)])
        async def f(context, message):
            before = context.storage.n or 0
            await asyncio.sleep(0.001 * (hash(context.address.id) % 3))
            context.storage.n = before + message.as_int()
            context.send(sf.message_builder("org.foo/g", context.address.id, int_value=context.storage.n))

        return functions

    bodies = [to_function(("org.foo", "f", str(i)), states=[("n", typed(official.IntType, i))],
                          invocations=[(None, typed(official.IntType, 10 * i + k)) for k in range(3)])
              for i in range(6)] * 2
    off = official.RequestReplyHandler(build(official))
    expected = [harness.run_coro(off.handle_async(b)) for b in bodies]
    mine = ours.RequestReplyHandler(build(ours))

    async def concurrently():
        return await asyncio.gather(*(mine.handle_async(b) for b in bodies))

    assert harness.run_coro(concurrently()) == expected


# --------------------------------------------------------------------------------------------------------------
# edge cases 16-19, 21, 23
# --------------------------------------------------------------------------------------------------------------


def test_16_no_op_batch_is_an_empty_body():
    out = run_both(single(fun=lambda sf, c, m, o: None), to_function(TARGET, invocations=[(None, STR_ARG)] * 4))
    assert out.response == b""


def test_17_caller_absent_empty_or_set_per_invocation():
    def fun(sf, c, m, o):
        o.append(c.caller)
        if c.caller is not None:
            c.send(sf.message_builder(c.caller.typename, c.caller.id, str_value="reply"))

    out = run_both(single(fun=fun), to_function(TARGET, invocations=[
        (("org.foo", "a", "1"), STR_ARG), (None, STR_ARG), (("", "", ""), STR_ARG), (("org.foo", "b", "2"), STR_ARG)]))
    assert out.observations == ["addr:'org.foo','a','1','org.foo/a'", "None", "None",
                                "addr:'org.foo','b','2','org.foo/b'"]
    assert [(x.target.type, x.target.id) for x in result_of(out.response).outgoing_messages] == [("a", "1"),
                                                                                                  ("b", "2")]


def test_18_absent_argument_is_an_empty_message():
    def fun(sf, c, m, o):
        o.extend([m.value_typename(), m.raw_value(), m.as_string(), m.is_string()])

    req = ToFunction()
    req.invocation.target.namespace, req.invocation.target.type, req.invocation.target.id = TARGET
    req.invocation.invocations.add()
    out = run_both(single(fun=fun), req.SerializeToString())
    assert out.observations == ["str:''", "None", "None", "bool:False"]


def test_19_send_after_with_and_without_token():
    def fun(sf, c, m, o):
        msg = sf.message_builder("org.foo/g", "1", str_value="x")
        c.send_after(timedelta(seconds=2), msg)
        c.send_after(timedelta(seconds=2), msg, "")
        c.send_after(timedelta(seconds=2), msg, cancellation_token="tok")
        c.cancel_delayed_message("tok")

    out = run_both(single(fun=fun), to_function(TARGET, invocations=[(None, STR_ARG)]))
    delayed = result_of(out.response).delayed_invocations
    assert [(d.cancellation_token, d.is_cancellation_request) for d in delayed] == [
        ("", False), ("", False), ("tok", False), ("tok", True)]


def test_19_empty_cancellation_token_is_refused_at_the_call():
    """Ours differs on purpose: the official SDK sends a cancellation with an empty token, which makes the
    runtime throw and fail the whole Flink job (edge case 19); ours raises ``ValueError`` where the mistake is."""
    caught = []

    def fun(sf, c, m, o):
        try:
            c.cancel_delayed_message("")
        except ValueError as exc:
            caught.append(exc)
            raise

    out = harness.run_handler(lambda: handle(ours, single(fun=fun)(ours, []),
                                             to_function(TARGET, invocations=[(None, STR_ARG)])), harness.Sink())
    assert len(caught) == 1 and isinstance(out.error.__cause__, ValueError)
    # and the official SDK indeed lets it through to the wire
    official_response = handle(official, single(fun=lambda sf, c, m, o: c.cancel_delayed_message(""))(official, []),
                               to_function(TARGET, invocations=[(None, STR_ARG)]))
    (d,) = result_of(official_response).delayed_invocations
    assert d.is_cancellation_request and d.cancellation_token == ""


@pytest.mark.parametrize("delay", [timedelta(milliseconds=-1), timedelta(microseconds=-1), timedelta(days=-3)])
def test_21_negative_delay_is_refused_at_the_call(delay):
    """Ours differs on purpose: the runtime fails the job on ``delay_in_ms < 0`` (edge case 21); the official SDK
    sends it (``timedelta(microseconds=-1)`` even truncates to 0 ms there)."""
    caught = []

    def fun(sf, c, m, o):
        try:
            c.send_after(delay, sf.message_builder("org.foo/g", "1", int_value=1))
        except ValueError as exc:
            caught.append(exc)

    assert handle(ours, single(fun=fun)(ours, []), to_function(TARGET, invocations=[(None, STR_ARG)])) == b""
    assert len(caught) == 1


@pytest.mark.parametrize("delay", [timedelta(0), timedelta(microseconds=999), timedelta(microseconds=1001),
                                   timedelta(seconds=1.005), timedelta(milliseconds=1.0009),
                                   timedelta(days=9, seconds=1, microseconds=500), timedelta(seconds=0.29),
                                   timedelta(days=999999, microseconds=999999)])
def test_21_delay_is_truncated_to_milliseconds_like_the_official_sdk(delay):
    def fun(sf, c, m, o):
        c.send_after(delay, sf.message_builder("org.foo/g", "1", int_value=1))

    out = run_both(single(fun=fun), to_function(TARGET, invocations=[(None, STR_ARG)]))
    (d,) = result_of(out.response).delayed_invocations
    assert d.delay_in_ms == int(delay.total_seconds() * 1000.0)


@pytest.mark.parametrize("method", ["send", "send_after"])
def test_egress_message_passed_to_send_is_a_type_error_at_the_call(method):
    """Ours differs on purpose: the official SDK accepts it and fails later, when it builds the response, with
    an AttributeError (the playground showcase has this bug); ours raises ``TypeError`` at the call."""
    caught = []

    def fun(sf, c, m, o):
        egress = sf.kafka_egress_message("e/k", "topic", "v")
        try:
            if method == "send":
                c.send(egress)
            else:
                c.send_after(timedelta(seconds=1), egress)
        except TypeError as exc:
            caught.append(exc)

    assert handle(ours, single(fun=fun)(ours, []), to_function(TARGET, invocations=[(None, STR_ARG)])) == b""
    assert len(caught) == 1
    with pytest.raises(AttributeError):
        handle(official, single(fun=fun)(official, []), to_function(TARGET, invocations=[(None, STR_ARG)]))


@pytest.mark.parametrize("value,expected", [("text", b"text"), (b"\x00\xff", b"\x00\xff"),
                                            (bytearray(b"ab"), b"ab"), (7, (7).to_bytes(4, "big")),
                                            (-2, (-2).to_bytes(4, "big", signed=True)), (True, b"\x00\x00\x00\x01"),
                                            (1.5, bytes.fromhex("3ff8000000000000"))])
@pytest.mark.parametrize("key", [None, "", "k"])
def test_23_kafka_egress_records(value, expected, key):
    def fun(sf, c, m, o):
        kwargs = {} if key is None else {"key": key}
        c.send_egress(sf.kafka_egress_message("org.foo/kafka", "topic", value, **kwargs))

    out = run_both(single(fun=fun), to_function(TARGET, invocations=[(None, STR_ARG)]))
    (e,) = result_of(out.response).outgoing_egresses
    assert (e.egress_namespace, e.egress_type) == ("org.foo", "kafka")
    assert e.argument.typename == "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
    assert e.argument.has_value
    record = KafkaProducerRecord.FromString(e.argument.value)
    assert (record.topic, record.value_bytes, record.key) == ("topic", expected, key or "")


@pytest.mark.parametrize("hash_key", [None, "", "123"])
@pytest.mark.parametrize("value", ["text", b"\x01"])
def test_23_kinesis_egress_records(hash_key, value):
    def fun(sf, c, m, o):
        kwargs = {} if hash_key is None else {"explicit_hash_key": hash_key}
        c.send_egress(sf.kinesis_egress_message("org.foo/kinesis", "stream", value, "pk", **kwargs))

    out = run_both(single(fun=fun), to_function(TARGET, invocations=[(None, STR_ARG)]))
    (e,) = result_of(out.response).outgoing_egresses
    assert e.argument.typename == "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
    record = KinesisEgressRecord.FromString(e.argument.value)
    assert (record.stream, record.partition_key, record.explicit_hash_key) == ("stream", "pk", hash_key or "")
    assert record.value_bytes == (value.encode() if isinstance(value, str) else value)


@pytest.mark.parametrize("call", [
    lambda sf: sf.kinesis_egress_message("o/k", "s", "v", None),
    lambda sf: sf.kinesis_egress_message("o/k", "", "v", "pk"),
    lambda sf: sf.kinesis_egress_message("o/k", "s", 5, "pk"),
    lambda sf: sf.kafka_egress_message("o/k", "", "v"),
    lambda sf: sf.kafka_egress_message("o/k", "t", None),
    lambda sf: sf.kafka_egress_message("o/k", "t", object()),
    lambda sf: sf.kafka_egress_message("o/k", "t", 2**31),
])
def test_23_egress_builders_refuse_what_the_official_refuses(call):
    with pytest.raises(Exception) as theirs:
        call(official)
    with pytest.raises(Exception) as mine:
        call(ours)
    assert harness.family(mine.value) == harness.family(theirs.value)


# --------------------------------------------------------------------------------------------------------------
# edge cases 25-27, 30, 32, 33
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typename", ["noslash", "/name", "ns/", "a/b/c", "/", "ns//name"])
def test_25_typenames_the_runtime_rejects_are_refused_at_bind(typename):
    """Ours differs on purpose: the official SDK binds any non-empty typename; the runtime can only route
    ``<namespace>/<name>`` with exactly one ``/`` (edge case 25), so ours refuses the rest at bind time with
    ``ConfigurationError`` (a ``ValueError``) whose message names the typename."""
    official.StatefulFunctions().register(typename, lambda c, m: None)  # the official SDK accepts it
    functions = ours.StatefulFunctions()
    with pytest.raises(errors().ConfigurationError) as info:
        functions.register(typename, lambda c, m: None)
    assert isinstance(info.value, ValueError)
    assert typename in str(info.value)
    with pytest.raises(errors().ConfigurationError):
        functions.bind(typename)(lambda c, m: None)


@pytest.mark.parametrize("typename", ["a/b/c", "ns/"])
def test_25_state_types_the_runtime_rejects_are_refused_at_bind(typename):
    """Ours differs on purpose: the runtime parses a state's type typename strictly and fails the job."""
    functions = ours.StatefulFunctions()
    with pytest.raises(errors().ConfigurationError):
        functions.register("org.foo/f", lambda c, m: None,
                           [ours.ValueSpec("a", ours.simple_type(typename, bytes, bytes))])


def test_25_targets_split_at_the_last_slash_like_the_official_sdk():
    def fun(sf, c, m, o):
        c.send(sf.message_builder("a/b/c", "1", int_value=1))
        c.send_egress(sf.egress_message_builder("x.y/z/w", "v", sf.StringType))

    out = run_both(single(fun=fun), to_function(TARGET, invocations=[(None, STR_ARG)]))
    r = result_of(out.response)
    assert (r.outgoing_messages[0].target.namespace, r.outgoing_messages[0].target.type) == ("a/b", "c")
    assert (r.outgoing_egresses[0].egress_namespace, r.outgoing_egresses[0].egress_type) == ("x.y/z", "w")


@pytest.mark.parametrize("name", ["_cells", "_typename"])
def test_26_state_names_that_collide_with_the_storage_are_refused(name):
    functions = ours.StatefulFunctions()
    with pytest.raises(ValueError):
        functions.register("org.foo/f", lambda c, m: None, [ours.ValueSpec(name, ours.IntType)])


@pytest.mark.parametrize("name", ["a", "a1", "_x", "x_", "seen_count", "ü"])
def test_26_official_state_names_are_accepted_and_round_trip(name):
    def build(sf, observed):
        functions = sf.StatefulFunctions()

        def fun(c, m):
            setattr(c.storage, name, (getattr(c.storage, name) or 0) + 1)

        functions.register("org.foo/f", fun, [sf.ValueSpec(name, sf.IntType)])
        return functions

    out = run_both(build, to_function(TARGET, states=[(name, typed(official.IntType, 4))],
                                      invocations=[(None, STR_ARG)]))
    (mutation,) = result_of(out.response).state_mutations
    assert mutation.state_name == name and mutation.state_value == typed(official.IntType, 5)


@pytest.mark.parametrize("ttl", [None, ("call", timedelta(0)), ("write", timedelta(0)),
                                 ("call", timedelta(microseconds=10)), ("write", timedelta(hours=2, microseconds=7)),
                                 ("call", timedelta(days=10000))])
def test_27_expiration_spec_encoding(ttl):
    """NONE travels as an explicit ExpirationSpec{mode: NONE}; a zero duration means no expiration."""

    def build(sf, observed):
        kwargs = {}
        if ttl is not None:
            kwargs["expire_after_call" if ttl[0] == "call" else "expire_after_write"] = ttl[1]
        functions = sf.StatefulFunctions()
        functions.register("org.foo/f", lambda c, m: None, [sf.ValueSpec("a", sf.IntType, **kwargs)])
        return functions

    out = run_both(build, to_function(TARGET, invocations=[(None, STR_ARG)]))
    (m,) = FromFunction.FromString(out.response).incomplete_invocation_context.missing_values
    assert m.HasField("expiration_spec")


def test_27_both_expirations_are_refused():
    for sf in (official, ours):
        with pytest.raises(ValueError):
            sf.ValueSpec("a", sf.IntType, expire_after_call=timedelta(seconds=1),
                         expire_after_write=timedelta(seconds=1))


@pytest.mark.parametrize("key,value", [("int", 2**31), ("int", -(2**31) - 1), ("long", 2**63), ("int", "1"),
                                       ("int", 1.0), ("string", 5), ("bool", "x"), ("int", True)])
def test_30_out_of_range_or_wrong_values_are_refused_at_assignment(key, value):
    def fun(sf, c, m, o):
        try:
            c.storage.a = value
        except Exception as exc:  # noqa: BLE001
            o.append(harness.family(exc))

    specs = lambda sf: [sf.ValueSpec("a", harness.type_for(sf, key))]  # noqa: E731
    out = run_both(single(specs=specs, fun=fun), to_function(TARGET, states=[("a", None)],
                                                              invocations=[(None, STR_ARG)]))
    assert len(out.observations) == 1 and out.response == b""


@pytest.mark.parametrize("key,value", [("float", 3.14), ("float", 1e39), ("float", -0.0), ("double", 1e-320),
                                       ("long", -(2**63)), ("int", 2**31 - 1), ("bool", 2), ("float", True),
                                       ("string", b"bytes")])
def test_30_builtin_encodings_match_the_official_sdk(key, value):
    def fun(sf, c, m, o):
        c.storage.a = value
        c.send(sf.message_builder("org.foo/g", "1", value=value, value_type=harness.type_for(sf, key)))

    specs = lambda sf: [sf.ValueSpec("a", harness.type_for(sf, key))]  # noqa: E731
    run_both(single(specs=specs, fun=fun), to_function(TARGET, states=[("a", None)], invocations=[(None, STR_ARG)]))


@pytest.mark.parametrize("body", [b"", ToFunction().SerializeToString()])
def test_32_request_without_invocation_is_malformed(body):
    """Ours differs on purpose: the official SDK crashes with AttributeError (its target address is None);
    ours raises ``MalformedRequestError`` (a ``ValueError``, HTTP 400) so the server can say what is wrong."""
    with pytest.raises(AttributeError):
        handle(official, single(fun=lambda sf, c, m, o: None)(official, []), body)
    with pytest.raises(errors().MalformedRequestError) as info:
        handle(ours, single(fun=lambda sf, c, m, o: None)(ours, []), body)
    assert isinstance(info.value, ValueError) and info.value.status == 400


def test_32_unparsable_body_is_malformed():
    with pytest.raises(errors().MalformedRequestError):
        handle(ours, single(fun=lambda sf, c, m, o: None)(ours, []), b"\xff\xff\xff")


def test_32_target_without_typename_is_malformed():
    """Ours differs on purpose: an all-empty target made the official SDK crash with AttributeError."""
    body = to_function(("", "", ""), invocations=[(None, STR_ARG)])
    with pytest.raises(AttributeError):
        handle(official, single(fun=lambda sf, c, m, o: None)(official, []), body)
    with pytest.raises(errors().MalformedRequestError):
        handle(ours, single(fun=lambda sf, c, m, o: None)(ours, []), body)


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("is_async", [False, True])
def test_33_handle_sync_works_inside_a_running_event_loop(is_async):
    """Ours differs on purpose: the official ``handle_sync`` is ``asyncio.run`` and raises RuntimeError when
    called from a thread that runs an event loop; ours runs sync functions directly and async ones on a helper
    thread's loop (its documented behaviour)."""
    seen = []

    def build(sf):
        functions = sf.StatefulFunctions()
        if is_async:
            async def f(c, m):
                await asyncio.sleep(0)
                seen.append(threading.current_thread().name)
                c.storage.n = 1
        else:
            def f(c, m):
                seen.append(threading.current_thread().name)
                c.storage.n = 1
        functions.register("org.foo/f", f, [sf.ValueSpec("n", sf.IntType)])
        return functions

    body = to_function(TARGET, states=[("n", None)], invocations=[(None, STR_ARG)])
    expected = handle(official, build(official), body)
    mine = ours.RequestReplyHandler(build(ours))
    theirs = official.RequestReplyHandler(build(official))

    async def inside_a_loop():
        with pytest.raises(RuntimeError):
            theirs.handle_sync(body)
        return mine.handle_sync(body)

    try:
        assert harness.run_coro(inside_a_loop()) == expected
    finally:
        harness.release_ours_handler(mine)
    assert len(seen) == 2  # the official oracle run above, and ours inside the loop


# --------------------------------------------------------------------------------------------------------------
# Where ours differs on purpose: typed errors, state decoded once and encoded once
# --------------------------------------------------------------------------------------------------------------


def test_unknown_typename_is_a_typed_key_error():
    """Ours differs on purpose: a typed ``UnknownFunctionError`` (HTTP 503, retried during a rolling deploy)
    rather than a bare ``KeyError``; it is still a ``KeyError`` so existing ``except KeyError`` code works."""
    body = to_function(("org.foo", "nobody", "1"), invocations=[(None, STR_ARG)])
    with pytest.raises(KeyError):
        handle(official, single(fun=lambda sf, c, m, o: None)(official, []), body)
    functions = single(fun=lambda sf, c, m, o: None)(ours, [])
    with pytest.raises(errors().UnknownFunctionError) as info:
        handle(ours, functions, body)
    assert isinstance(info.value, KeyError) and info.value.status == 503
    assert "org.foo/nobody" in str(info.value)
    with pytest.raises(errors().UnknownFunctionError):
        functions.for_typename("org.foo/nobody")
    with pytest.raises(KeyError):
        functions.for_typename("org.foo/nobody")


def counting_type(sf, counts):
    import json

    def ser(v):
        counts["encode"] += 1
        return json.dumps(v).encode()

    def de(b):
        counts["decode"] += 1
        return json.loads(b)

    return sf.simple_type("org.foo/Counted", serialize_fn=ser, deserialize_fn=de)


@pytest.mark.parametrize("script,states,expected", [
    ("read_write", ("a",), {"decode": 1, "encode": 1}),
    ("read_only", ("a",), {"decode": 1, "encode": 0}),
    ("write_only", ("a",), {"decode": 0, "encode": 1}),
    ("write_then_delete", ("a",), {"decode": 0, "encode": 0}),
    ("untouched", ("a",), {"decode": 0, "encode": 0}),
])
def test_state_decoded_at_most_once_and_encoded_once_only_if_written(script, states, expected):
    """Ours differs on purpose (one decode per batch, one encode if written): the official SDK decodes on every
    read and encodes on every write."""
    counts = {"encode": 0, "decode": 0}
    functions = ours.StatefulFunctions()
    t = counting_type(ours, counts)

    @functions.bind("org.foo/f", [ours.ValueSpec("a", t), ours.ValueSpec("b", t)])
    def f(c, m):
        s = c.storage
        if script == "read_write":
            s.a = (s.a or 0) + 1
            s.a = s.a + 1
        elif script == "read_only":
            _ = (s.a, s.a)
        elif script == "write_only":
            s.a = 5
            s.a = 6
        elif script == "write_then_delete":
            s.a = 5
            del s.a

    encoded = t.serializer().serialize(41)
    counts["encode"] = 0
    body = to_function(TARGET, states=[("a", TypedValue(typename="org.foo/Counted", has_value=True, value=encoded)),
                                       ("b", TypedValue(typename="org.foo/Counted", has_value=True, value=encoded))],
                       invocations=[(None, STR_ARG)] * 5)
    handle(ours, functions, body)
    assert counts == expected


def _count_calls(monkeypatch, module, name, counts):
    original = getattr(module, name)

    def counting(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)


@pytest.mark.parametrize("is_async", [False, True])
def test_no_event_loop_per_request(monkeypatch, is_async):
    """Ours differs on purpose: the official ``handle_sync`` makes a new loop for every request (asyncio.run)."""

    def build(sf):
        functions = sf.StatefulFunctions()
        if is_async:
            async def f(c, m):
                await asyncio.sleep(0)
        else:
            def f(c, m):
                pass
        functions.register("org.foo/f", f)
        return functions

    body = to_function(TARGET, invocations=[(None, STR_ARG)])
    counts: dict = {}
    _count_calls(monkeypatch, asyncio, "new_event_loop", counts)
    _count_calls(monkeypatch, asyncio, "run", counts)

    theirs = official.RequestReplyHandler(build(official))
    for _ in range(10):
        theirs.handle_sync(body)
    assert counts.get("run", 0) == 10  # the counter sees the official SDK's loops: it can fail

    counts.clear()
    mine = ours.RequestReplyHandler(build(ours))
    try:
        for _ in range(100):
            assert mine.handle_sync(body) == b""
    finally:
        harness.release_ours_handler(mine)
    assert counts.get("run", 0) == 0
    assert counts.get("new_event_loop", 0) <= (1 if is_async else 0)


def test_dropped_handler_leaks_no_event_loop():
    """A handler used for an async function through ``handle_sync`` and then dropped must not leave an
    unclosed event loop behind (ResourceWarning, two file descriptors each)."""

    def build():
        functions = ours.StatefulFunctions()

        @functions.bind("org.foo/f")
        async def f(c, m):
            pass

        return functions

    body = to_function(TARGET, invocations=[(None, STR_ARG)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        handler = ours.RequestReplyHandler(build())
        handler.handle_sync(body)
        del handler
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_duplicate_state_entries_in_a_request_last_one_wins():
    specs = lambda sf: [sf.ValueSpec("a", sf.IntType)]  # noqa: E731
    out = run_both(single(specs=specs, fun=lambda sf, c, m, o: o.append(c.storage.a)),
                   to_function(TARGET, states=[("a", typed(official.IntType, 1)), ("a", typed(official.IntType, 2))],
                               invocations=[(None, STR_ARG)]))
    assert out.observations == ["int:2"]


def test_binding_a_typename_twice_is_refused():
    """Ours differs on purpose (documented in ``StatefulFunctions.register``): the official SDK silently keeps
    the last function, which hides a copy-paste mistake."""
    functions = ours.StatefulFunctions()
    functions.register("org.foo/f", lambda c, m: None)
    with pytest.raises(errors().ConfigurationError):
        functions.register("org.foo/f", lambda c, m: None)


# --------------------------------------------------------------------------------------------------------------
# Value semantics within a batch (the official SDK encodes at assignment and decodes at every read)
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key,value", [("float", 0.1), ("bool", 2), ("double", 3), ("float", 7),
                                       ("string", b"raw")])
def test_read_after_write_gives_the_stored_value(key, value):
    """A FloatType state holds a 32-bit float: after ``storage.x = 0.1`` the official SDK reads back
    0.10000000149011612, and a message built from it carries that value."""

    def fun(sf, c, m, o):
        c.storage.a = value
        o.append(c.storage.a)
        c.send(sf.message_builder("org.foo/g", "1", value=c.storage.a, value_type=sf.DoubleType)
               if key in ("float", "double") else sf.message_builder("org.foo/g", "1", str_value=repr(c.storage.a)))

    specs = lambda sf: [sf.ValueSpec("a", harness.type_for(sf, key))]  # noqa: E731
    run_both(single(specs=specs, fun=fun), to_function(TARGET, states=[("a", None)], invocations=[(None, STR_ARG)]))


# The next four differ from the official SDK on purpose: each state value is decoded at most once per batch
# and encoded once, at the end, only if written, for speed (the official SDK decoded at every read and
# encoded at every assignment; FLINK-27934 asked for the same change). For a user type (JSON, protobuf,
# simple_type) this means: a read returns the same object for the rest of the batch, what is saved is the
# object as it is when the batch ends, and a value the type cannot serialize fails the batch at its end.
# README.md ("Differences from the official SDK") and statefun_workers/storage.py say so.


def json_function(name, fun):
    def build(sf, observed):
        functions = sf.StatefulFunctions()
        functions.register("org.foo/f", lambda c, m: fun(sf, c, m, observed),
                           [sf.ValueSpec(name, sf.make_json_type("org.foo/J"))])
        return functions

    return build


def json_value(response, name):
    (mutation,) = result_of(response).state_mutations
    assert mutation.state_name == name
    return official.make_json_type("org.foo/J").serializer().deserialize(mutation.state_value.value)


def test_json_read_after_write_returns_the_assigned_object():
    """Official: a fresh JSON round trip ({'1': [1, 2]}). Ours: the object assigned; the bytes sent are the same."""
    assigned = {1: (1, 2)}

    def fun(sf, c, m, o):
        c.storage.j = assigned
        o.append(c.storage.j is assigned)

    body = to_function(TARGET, states=[("j", None)], invocations=[(None, STR_ARG)])
    seen_official, seen_ours = [], []
    theirs = handle(official, json_function("j", fun)(official, seen_official), body)
    mine = handle(ours, json_function("j", fun)(ours, seen_ours), body)
    assert seen_official == [False] and seen_ours == [True]
    assert mine == theirs


def test_mutating_a_read_value_without_assigning_is_seen_by_later_invocations():
    """Official: invocation 2 reads the stored value again, so invocation 1's unassigned edit is lost. Ours:
    decoded once, the edit stays in the object, and is saved because invocation 2 assigns it back."""

    def fun(sf, c, m, o):
        basket = c.storage.basket
        if m.as_int() == 1:
            basket["abandoned"] = 1
        else:
            basket["kept"] = 2
            c.storage.basket = basket

    json_type = official.make_json_type("org.foo/J")
    body = to_function(TARGET, states=[("basket", typed(json_type, {"a": 0}))],
                       invocations=[(None, typed(official.IntType, 1)), (None, typed(official.IntType, 2))])
    theirs = handle(official, json_function("basket", fun)(official, []), body)
    mine = handle(ours, json_function("basket", fun)(ours, []), body)
    assert json_value(theirs, "basket") == {"a": 0, "kept": 2}
    assert json_value(mine, "basket") == {"a": 0, "abandoned": 1, "kept": 2}


def test_mutating_a_value_after_assigning_it_is_saved():
    """Official: serialized at the assignment, so [1]. Ours: encoded at the end of the batch, so [1, 2]."""

    def fun(sf, c, m, o):
        items = [1]
        c.storage.items = items
        items.append(2)

    body = to_function(TARGET, states=[("items", None)], invocations=[(None, STR_ARG)])
    assert json_value(handle(official, json_function("items", fun)(official, []), body), "items") == [1]
    assert json_value(handle(ours, json_function("items", fun)(ours, []), body), "items") == [1, 2]


def test_unserializable_user_value_fails_the_batch_at_its_end():
    """Official: the assignment raises, and a function may catch it. Ours: the batch fails when its response is
    built, with a FunctionError naming the state, and no effects (the runtime re-sends the batch)."""

    def fun(sf, c, m, o):
        try:
            c.storage.j = {"when": object()}
        except TypeError:
            o.append("refused")
        c.send(sf.message_builder("org.foo/g", "1", str_value="after"))

    body = to_function(TARGET, states=[("j", None)], invocations=[(None, STR_ARG)])
    seen = []
    assert handle(official, json_function("j", fun)(official, seen), body) != b"" and seen == ["refused"]
    handler = ours.RequestReplyHandler(json_function("j", fun)(ours, []))
    with pytest.raises(errors().FunctionError, match="state 'j' could not be serialized") as raised:
        handler.handle_sync(body)
    assert isinstance(raised.value.__cause__, TypeError)


def test_empty_target_id_is_processed():
    """Ours differs from the official SDK, which raises ValueError ('target_id can not be missing') for every
    batch addressed to id "" (its Message refuses an empty id). The runtime can send that id (a Kafka record
    with an empty key is routed to id ""), and refusing it would fail the job forever; ours runs the function
    with ``context.address.id == ""``."""
    body = to_function(("org.foo", "f", ""), invocations=[(None, STR_ARG)])
    with pytest.raises(ValueError):
        handle(official, single(fun=lambda sf, c, m, o: None)(official, []), body)
    seen = []
    response = handle(ours, single(fun=lambda sf, c, m, o: seen.append(c.address))(ours, []), body)
    assert response == b"" and [a.id for a in seen] == [""]


@pytest.mark.parametrize("body", [None, 42, "text"])
def test_a_body_that_is_not_bytes_is_malformed_not_a_crash(body):
    """The server always passes bytes; an embedding caller may not. It is a refusal, never an internal error."""
    handler = ours.RequestReplyHandler(ours.StatefulFunctions())
    with pytest.raises(errors().MalformedRequestError, match="not a ToFunction"):
        handler.handle_sync(body)
