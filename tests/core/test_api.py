"""The public API, name for name: what the official SDK exports, ours exports with compatible signatures.

Then the official SDK's own unit-test scenarios (its pytests, scenario by scenario), re-expressed here against the
public API only and run on both implementations (``sf`` is ``statefun`` or ``statefun_workers``); where a
scenario has a response, ours must also equal the official one.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
from datetime import timedelta

import pytest
import statefun as official
from statefun.kafka_egress_pb2 import KafkaProducerRecord
from statefun.request_reply_pb2 import FromFunction, TypedValue

from . import harness
from .harness import handle, to_function, typed

ours = harness.ours
IMPLEMENTATIONS = [pytest.param(official, id="official"), pytest.param(ours, id="ours")]

KAFKA_RECORD = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"


def official_names() -> list[str]:
    """The names ``statefun/__init__.py`` imports (its whole public API), read from the file itself."""
    tree = ast.parse(inspect.getsource(official))
    names = [alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
             for alias in node.names]
    assert len(names) >= 20, names  # the file was read, not an empty stub
    return names


NAMES = official_names()


# --------------------------------------------------------------------------------------------------------------
# Name for name
# --------------------------------------------------------------------------------------------------------------


def test_official_name_list_is_the_documented_one():
    documented = {"TypeSerializer", "Type", "simple_type", "ValueSpec", "SdkAddress", "BoolType", "IntType",
                  "FloatType", "DoubleType", "LongType", "StringType", "Message", "EgressMessage",
                  "message_builder", "egress_message_builder", "kafka_egress_message", "kinesis_egress_message",
                  "Context", "StatefulFunctions", "RequestReplyHandler", "make_protobuf_type", "make_json_type"}
    assert set(NAMES) == documented


@pytest.mark.parametrize("name", NAMES)
def test_name_is_exported(name):
    assert hasattr(ours, name), f"statefun_workers has no {name}"
    assert name in ours.__all__, f"{name} is missing from statefun_workers.__all__"


def test_star_import_gives_every_official_name():
    namespace: dict = {}
    exec("from statefun_workers import *", namespace)
    missing = [n for n in NAMES if n not in namespace]
    assert not missing


def _compatible(official_sig: inspect.Signature, ours_sig: inspect.Signature) -> str | None:
    """None if a call valid for the official signature is valid for ours; else why not."""
    theirs = list(official_sig.parameters.values())
    mine = list(ours_sig.parameters.values())
    for i, p in enumerate(theirs):
        if i >= len(mine):
            return f"ours lacks parameter {p.name!r}"
        q = mine[i]
        if i == 0 and p.name == q.name == "self":
            continue  # compiled (mypyc) methods report self as positional-only; nobody passes self by keyword
        if (p.name, p.kind) != (q.name, q.kind):
            return f"parameter {i}: official {p.name!r} ({p.kind.description}), ours {q.name!r} ({q.kind.description})"
        if p.default is not q.default and p.default != q.default:
            return f"parameter {p.name!r}: default {p.default!r} vs ours {q.default!r}"
    for q in mine[len(theirs):]:
        if q.kind is not inspect.Parameter.KEYWORD_ONLY:
            return f"ours adds parameter {q.name!r} that is not keyword-only ({q.kind.description})"
        if q.default is inspect.Parameter.empty:
            return f"ours adds a required parameter {q.name!r}"
    return None


def _signature(obj):
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


@pytest.mark.parametrize("name", NAMES)
def test_same_call_signature(name):
    theirs, mine = getattr(official, name), getattr(ours, name)
    if not callable(theirs):
        # the built-in type objects: instances of Type with the same typename
        assert isinstance(mine, ours.Type)
        assert mine.typename == theirs.typename
        return
    if inspect.isabstract(theirs):
        # nobody can call the official constructor (Context is abstract); subclassing is what must work, see
        # test_context_can_be_subclassed_like_the_official_abstract_context
        return
    problem = _compatible(_signature(theirs), _signature(mine))
    assert problem is None, f"{name}: {problem}\n official {_signature(theirs)}\n ours     {_signature(mine)}"


def _public_members(cls) -> list[str]:
    return sorted(n for n in dir(cls) if not n.startswith("_"))


@pytest.mark.parametrize("name", [n for n in NAMES if inspect.isclass(getattr(official, n))])
def test_class_members_and_method_signatures(name):
    theirs, mine = getattr(official, name), getattr(ours, name)
    for member in _public_members(theirs):
        assert hasattr(mine, member), f"{name}.{member} is missing"
        a, b = inspect.getattr_static(theirs, member), inspect.getattr_static(mine, member)
        if isinstance(a, property):
            assert isinstance(b, property) or not callable(b), f"{name}.{member} is a property in the official SDK"
            continue
        if inspect.isfunction(a):
            problem = _compatible(inspect.signature(a), inspect.signature(getattr(mine, member)))
            assert problem is None, f"{name}.{member}: {problem}"


def test_handle_async_is_a_coroutine_function_and_handle_sync_is_not():
    assert inspect.iscoroutinefunction(ours.RequestReplyHandler.handle_async)
    assert not inspect.iscoroutinefunction(ours.RequestReplyHandler.handle_sync)


def test_builtin_types_are_distinct_and_named_as_the_official_ones():
    for n in ("BoolType", "IntType", "FloatType", "DoubleType", "LongType", "StringType"):
        assert getattr(ours, n).typename == getattr(official, n).typename
    assert len({getattr(ours, n).typename for n in ("BoolType", "IntType", "FloatType", "DoubleType", "LongType",
                                                    "StringType")}) == 6


def test_context_can_be_subclassed_like_the_official_abstract_context():
    """User test doubles subclass ``statefun.Context`` and implement the three abstract properties."""

    def fake(base):
        class FakeContext(base):
            def __init__(self):
                self.sent = []

            @property
            def address(self):
                return None

            @property
            def storage(self):
                return None

            @property
            def caller(self):
                return None

            def send(self, message):
                self.sent.append(message)

        return FakeContext

    for sf in (official, ours):
        ctx = fake(sf.Context)()
        ctx.send("m")
        assert ctx.sent == ["m"] and ctx.caller is None


def test_context_subclass_without_init_can_be_instantiated():
    """A minimal fake (no ``__init__``) instantiates with no arguments on the official abstract Context."""

    def fake(base):
        class Minimal(base):
            address = property(lambda self: None)
            storage = property(lambda self: None)
            caller = property(lambda self: None)

        return Minimal

    assert fake(official.Context)().caller is None
    assert fake(ours.Context)().caller is None


# --------------------------------------------------------------------------------------------------------------
# The official SDK's test scenarios, against the public API (written for this project)
# --------------------------------------------------------------------------------------------------------------


def greeter_functions(sf):
    functions = sf.StatefulFunctions()

    @functions.bind("org.foo/greeter", [sf.ValueSpec("seen", sf.IntType)])
    def greeter(context, message):
        context.storage.seen += 1
        context.send(sf.message_builder("org.foo/greeter-java", "0", int_value=context.storage.seen))
        context.send_after(timedelta(hours=1), sf.message_builder("org.foo/greeter-java", "0", str_value="later"))
        context.send_after(timedelta(seconds=1), sf.message_builder("org.foo/greeter-java", "0", str_value="x"),
                           "token-1234")
        context.cancel_delayed_message("token-1234")
        context.send_egress(sf.kafka_egress_message(typename="e/kafka", topic="out", value=message.as_string()))

    return functions


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_integration(sf):
    body = to_function(states=[("seen", typed(official.IntType, 1))],
                       invocations=[(("org.foo", "bar", "1"), typed(official.StringType, "hello"))])
    response = handle(sf, greeter_functions(sf), body)
    result = FromFunction.FromString(response).invocation_result

    (out,) = result.outgoing_messages
    assert (out.target.namespace, out.target.type, out.target.id) == ("org.foo", "greeter-java", "0")
    assert out.argument.typename == "io.statefun.types/int"
    assert official.IntType.serializer().deserialize(out.argument.value) == 2

    (mutation,) = result.state_mutations
    assert mutation.state_name == "seen"
    assert mutation.mutation_type == FromFunction.PersistedValueMutation.MODIFY
    assert mutation.state_value.typename == "io.statefun.types/int"
    assert official.IntType.serializer().deserialize(mutation.state_value.value) == 2

    first, second, third = result.delayed_invocations
    assert first.delay_in_ms == 3_600_000 and not first.is_cancellation_request and first.cancellation_token == ""
    assert second.delay_in_ms == 1000 and second.cancellation_token == "token-1234"
    assert third.is_cancellation_request and third.cancellation_token == "token-1234"

    (egress,) = result.outgoing_egresses
    assert (egress.egress_namespace, egress.egress_type) == ("e", "kafka")
    assert egress.argument.typename == KAFKA_RECORD
    record = KafkaProducerRecord.FromString(egress.argument.value)
    assert (record.topic, record.value_bytes, record.key) == ("out", b"hello", "")

    if sf is not official:
        assert response == handle(official, greeter_functions(official), body)


def incomplete_functions(sf):
    functions = sf.StatefulFunctions()
    functions.register("org.foo/greeter", lambda context, message: None, [
        sf.ValueSpec("seen", sf.IntType),
        sf.ValueSpec("missing_state_1", sf.StringType),
        sf.ValueSpec("missing_state_2", sf.FloatType, expire_after_write=timedelta(seconds=2)),
    ])
    return functions


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_integration_incomplete_context(sf):
    body = to_function(states=[("seen", None)], invocations=[(None, typed(official.StringType, "x"))])
    response = handle(sf, incomplete_functions(sf), body)
    missing = FromFunction.FromString(response).incomplete_invocation_context.missing_values
    assert [m.state_name for m in missing] == ["missing_state_1", "missing_state_2"]
    assert missing[0].type_typename == "io.statefun.types/string"
    assert missing[1].type_typename == "io.statefun.types/float"
    assert missing[1].expiration_spec.mode == FromFunction.ExpirationSpec.AFTER_WRITE
    assert missing[1].expiration_spec.expire_after_millis == 2000
    if sf is not official:
        assert response == handle(official, incomplete_functions(official), body)


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_caller_not_set(sf):
    seen = []
    functions = sf.StatefulFunctions()
    functions.register("org.foo/greeter", lambda context, message: seen.append(context.caller))
    assert handle(sf, functions, to_function(invocations=[(None, typed(official.StringType, "x"))])) == b""
    assert seen == [None]


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_message_builder_int_and_typed_value(sf):
    m = sf.message_builder("foo/bar", "id", int_value=1)
    assert m.is_int() and m.as_int() == 1 and not m.is_string()
    m = sf.message_builder("foo/bar", "id", value=5.0, value_type=sf.FloatType)
    assert m.is_float() and m.as_float() == 5.0


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_kafka_egress_record(sf):
    egress = sf.kafka_egress_message(typename="foo/bar", topic="topic", value=1337420)
    assert egress.typename == "foo/bar"
    assert egress.value_typename() == KAFKA_RECORD
    record = KafkaProducerRecord.FromString(egress.raw_value())
    assert record.value_bytes == (1337420).to_bytes(4, "big", signed=True)


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_sync_and_async_functions_and_their_specs(sf):
    functions = sf.StatefulFunctions()
    specs = [sf.ValueSpec("b", sf.IntType), sf.ValueSpec("a", sf.StringType)]

    @functions.bind("org.foo/sync", specs)
    def sync_fn(context, message):
        pass

    @functions.bind("org.foo/async")
    async def async_fn(context, message):
        pass

    assert sync_fn.__name__ == "sync_fn" and async_fn.__name__ == "async_fn"  # bind returns the function
    assert not functions.for_typename("org.foo/sync").is_async
    assert functions.for_typename("org.foo/async").is_async
    assert functions.for_typename("org.foo/sync").fun is sync_fn

    # the specs, in declaration order, decide what a request lacking state is asked for
    body = to_function(target=("org.foo", "sync", "1"), invocations=[(None, typed(official.StringType, "x"))])
    missing = FromFunction.FromString(handle(sf, functions, body)).incomplete_invocation_context.missing_values
    assert [m.state_name for m in missing] == ["b", "a"]
    # no specs: nothing is ever missing
    body = to_function(target=("org.foo", "async", "1"), invocations=[(None, typed(official.StringType, "x"))])
    assert handle(sf, functions, body) == b""


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_duplicate_state_names_are_refused(sf):
    functions = sf.StatefulFunctions()
    with pytest.raises(ValueError):
        functions.register("org.foo/f", lambda c, m: None, [sf.ValueSpec("a", sf.IntType),
                                                           sf.ValueSpec("a", sf.StringType)])


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_wrong_signature_is_refused(sf):
    functions = sf.StatefulFunctions()
    with pytest.raises(ValueError):
        functions.register("org.foo/f", lambda only_one: None)


def _storage_run(sf, specs, states, script):
    """Run ``script(storage)`` once over the given states; return (observed, response)."""
    observed = []
    functions = sf.StatefulFunctions()
    functions.register("org.foo/f", lambda context, message: observed.append(script(context.storage)), specs(sf))
    body = to_function(target=("org.foo", "f", "1"), states=states,
                       invocations=[(None, typed(official.StringType, "x"))])
    return observed, handle(sf, functions, body)


def _ab(sf):
    return [sf.ValueSpec("a", sf.IntType), sf.ValueSpec("b", sf.StringType)]


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_storage_resolution(sf):
    full = [("a", typed(official.IntType, 1)), ("b", typed(official.StringType, "hello"))]
    observed, _ = _storage_run(sf, _ab, full, lambda s: (s.a, s.b))
    assert observed == [(1, "hello")]
    # no values at all: every spec is missing, in declaration order, and no code runs
    observed, response = _storage_run(sf, _ab, [], lambda s: s.a)
    assert observed == []
    assert [m.state_name for m in FromFunction.FromString(response).incomplete_invocation_context.missing_values] \
        == ["a", "b"]
    # partial: only the absent one
    observed, response = _storage_run(sf, _ab, full[1:], lambda s: s.a)
    assert [m.state_name for m in FromFunction.FromString(response).incomplete_invocation_context.missing_values] \
        == ["a"]


def test_a_name_that_is_no_value_spec_is_refused_naming_the_function():
    def script(s):
        with pytest.raises(AttributeError, match="'typo' is not a registered ValueSpec for the function 'org.foo/f'"):
            s.typo  # noqa: B018
        with pytest.raises(AttributeError):
            s.typo = 1
        return s.a

    observed, _ = _storage_run(ours, _ab, [("a", typed(official.IntType, 1)), ("b", None)], script)
    assert observed == [1]


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_storage_ignores_unknown_received_state(sf):
    states = [("a", typed(official.IntType, 1)), ("b", typed(official.StringType, "x")),
              ("c", typed(official.IntType, 5))]

    def script(s):
        with pytest.raises(AttributeError):
            s.c  # noqa: B018
        return s.a

    observed, response = _storage_run(sf, _ab, states, script)
    assert observed == [1] and response == b""


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_storage_manipulation(sf):
    states = [("a", typed(official.IntType, 1)), ("b", typed(official.StringType, "x"))]

    def script(s):
        s.a += 1
        first = s.a
        del s.a
        gone = s.a
        s.a = 7
        return first, gone, s.a, s.b

    observed, response = _storage_run(sf, _ab, states, script)
    assert observed == [(2, None, 7, "x")]
    (mutation,) = FromFunction.FromString(response).invocation_result.state_mutations
    assert mutation.state_name == "a" and mutation.mutation_type == FromFunction.PersistedValueMutation.MODIFY
    assert mutation.state_value == typed(official.IntType, 7)


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_storage_reads_do_not_modify_and_deletes_do(sf):
    states = [("a", typed(official.IntType, 1)), ("b", typed(official.StringType, "x"))]
    _, response = _storage_run(sf, _ab, states, lambda s: (s.a, s.b))
    assert response == b""
    _, response = _storage_run(sf, _ab, states, lambda s: s.__delattr__("b"))
    (mutation,) = FromFunction.FromString(response).invocation_result.state_mutations
    assert mutation.state_name == "b" and mutation.mutation_type == FromFunction.PersistedValueMutation.DELETE
    assert not mutation.HasField("state_value")


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_storage_missing_value_reads_none_and_can_be_set(sf):
    states = [("a", TypedValue(typename=official.IntType.typename, has_value=False)), ("b", None)]

    def script(s):
        before = (s.a, s.b)
        s.a = 3
        return before

    observed, response = _storage_run(sf, _ab, states, script)
    assert observed == [(None, None)]
    (mutation,) = FromFunction.FromString(response).invocation_result.state_mutations
    assert mutation.state_value == typed(official.IntType, 3)


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_stateless_function(sf):
    observed, response = _storage_run(sf, lambda sf: [], [], lambda s: 1)
    assert observed == [1] and response == b""


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
@pytest.mark.parametrize("target", ["foo/bar", "a.b/c-d"])
def test_valid_target_typenames(sf, target):
    functions = sf.StatefulFunctions()
    functions.register("org.foo/f", lambda c, m: c.send(sf.message_builder(target, "1", int_value=1)))
    response = handle(sf, functions, to_function(target=("org.foo", "f", "1"),
                                                 invocations=[(None, typed(official.IntType, 1))]))
    (out,) = FromFunction.FromString(response).invocation_result.outgoing_messages
    assert f"{out.target.namespace}/{out.target.type}" == target


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
@pytest.mark.parametrize("target", ["/bar", "n/", "/", "nothing"])
def test_invalid_target_typenames_fail_the_batch(sf, target):
    """The official SDK fails when it builds the response, ours at the call: either way the batch fails."""
    functions = sf.StatefulFunctions()
    functions.register("org.foo/f", lambda c, m: c.send(sf.message_builder(target, "1", int_value=1)))
    with pytest.raises(Exception) as info:
        handle(sf, functions, to_function(target=("org.foo", "f", "1"),
                                          invocations=[(None, typed(official.IntType, 1))]))
    assert isinstance(harness.root_error(info.value), ValueError)


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
@pytest.mark.parametrize("key,value", [("bool", True), ("bool", False), ("int", -5), ("long", 1 << 45),
                                       ("float", 0.5), ("double", 1e-20), ("string", "hello"), ("string", "")])
def test_builtin_round_trips(sf, key, value):
    t = harness.type_for(sf, key)
    ser = t.serializer()
    data = ser.serialize(value)
    assert data == harness.type_for(official, key).serializer().serialize(value)
    assert ser.deserialize(data) == value


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_json_and_simple_types(sf):
    import json

    t = sf.make_json_type("org.foo/json")
    value = {"name": "bob", "n": [1, 2.5, None, True], "ü": "é"}
    assert t.serializer().deserialize(t.serializer().serialize(value)) == value
    # the same value as the official SDK's (docs/json.md), keys in the same order
    data, official_data = t.serializer().serialize(value), official.make_json_type("x/y").serializer().serialize(value)
    assert list(json.loads(data).items()) == list(json.loads(official_data).items())
    s = sf.simple_type("org.foo/simple", serialize_fn=lambda v: json.dumps(v).encode(),
                       deserialize_fn=lambda b: json.loads(b))
    assert s.typename == "org.foo/simple"
    assert s.serializer().deserialize(s.serializer().serialize([1, "a"])) == [1, "a"]


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_message_is_string_as_string(sf):
    m = sf.message_builder("foo/bar", "1", str_value="hello")
    assert m.is_string() and m.as_string() == "hello" and m.value_typename() == "io.statefun.types/string"


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
def test_value_spec(sf):
    spec = sf.ValueSpec("a", sf.IntType)
    assert (spec.name, spec.type.typename, spec.after_call, spec.after_write) == ("a", "io.statefun.types/int",
                                                                                   False, False)
    spec = sf.ValueSpec("b", sf.IntType, expire_after_call=timedelta(seconds=1))
    assert spec.after_call and not spec.after_write and spec.duration == 1000
    spec = sf.ValueSpec("c", sf.IntType, expire_after_write=timedelta(seconds=1))
    assert spec.after_write and not spec.after_call and spec.duration == 1000
    with pytest.raises(ValueError):
        sf.ValueSpec("d", sf.IntType, expire_after_call=timedelta(seconds=1), expire_after_write=timedelta(seconds=1))


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", ["-a", "def", "class", "Upper", "1a", "a b", "", "_"])
def test_value_spec_illegal_names(sf, name):
    with pytest.raises(ValueError):
        sf.ValueSpec(name, sf.IntType)


@pytest.mark.parametrize("sf", IMPLEMENTATIONS)
@pytest.mark.parametrize("name", ["a", "a1", "_x", "seen_count", "ü"])
def test_value_spec_legal_names(sf, name):
    assert sf.ValueSpec(name, sf.IntType).name == name


class _AsyncCallable:
    """A function object whose __call__ is async: inspect does not see a coroutine function, so it is bound as
    sync, and each call returns a coroutine. The official SDK never awaited it (its effects were lost)."""

    def __init__(self, fail_on: int | None = None):
        self.fail_on = fail_on

    async def __call__(self, context, message):
        await asyncio.sleep(0)
        text = message.as_string()
        if text == f"m{self.fail_on}":
            raise RuntimeError("boom")
        context.storage.seen = (context.storage.seen or 0) + 1
        context.send(ours.message_builder(target_typename="org.foo/echo", target_id=text, str_value=text))


def _awaitable_batch(fail_on=None):
    functions = ours.StatefulFunctions()
    functions.register("org.foo/f", _AsyncCallable(fail_on), [ours.ValueSpec("seen", ours.IntType)])
    body = to_function(target=("org.foo", "f", "1"), states=[("seen", None)],
                       invocations=[(None, typed(official.StringType, f"m{i}")) for i in range(3)])
    return ours.RequestReplyHandler(functions), body


@pytest.mark.parametrize("entry", ["handle_async", "handle_sync"])
def test_an_awaitable_returned_by_a_sync_function_is_awaited_and_the_batch_goes_on(entry):
    handler, body = _awaitable_batch()
    try:
        response = asyncio.run(handler.handle_async(body)) if entry == "handle_async" else handler.handle_sync(body)
    finally:
        handler.close()
    result = FromFunction.FromString(response).invocation_result
    assert [m.target.id for m in result.outgoing_messages] == ["m0", "m1", "m2"]
    (mutation,) = result.state_mutations
    assert official.IntType.serializer().deserialize(mutation.state_value.value) == 3


@pytest.mark.parametrize("entry", ["dispatch_async", "dispatch_sync"])
def test_an_awaitable_that_raises_fails_the_batch_at_its_message(entry):
    handler, body = _awaitable_batch(fail_on=1)
    try:
        result = asyncio.run(handler.dispatch_async(body)) if entry == "dispatch_async" \
            else handler.dispatch_sync(body)
    finally:
        handler.close()
    assert result.outcome == "error" and result.response == b""
    assert result.error.invocation == 1 and "message 2 of 3" in result.error.message
    assert isinstance(result.error.__cause__, RuntimeError)
