"""Shared machinery for the core tests: the two implementations, a script interpreter that builds the same
stateful function against either public API, request encoding and response comparison.

Everything here is written against the *official* SDK's public API only (``statefun``), so the same function
definition runs unchanged on ``statefun`` (the oracle) and on ``statefun_workers`` (ours).

Functions are described by data (``FunctionDef``: specs + per-invocation scripts of ``Op`` tuples), so hypothesis can
print a failing example that can be pasted back into a test.  What a function observes (state reads, message
accessors, the caller, errors raised by API calls) is appended to a side channel (``sink``) and compared as well,
so a difference that never reaches the wire still shows.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import statefun as official
from google.protobuf import text_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Error as ProtobufError
from google.protobuf.message import Message as ProtobufMessage
from statefun.kafka_egress_pb2 import KafkaProducerRecord
from statefun.kinesis_egress_pb2 import KinesisEgressRecord
from statefun.request_reply_pb2 import Address, FromFunction, ToFunction, TypedValue

# NOTE: imported unguarded: a package that fails to import fails every core test with its own traceback.
import statefun_workers as ours

# --------------------------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------------------------

JSON_TYPENAME = "test.types/json-thing"
PROTO_TYPE_KEY = "proto"
BUILTIN_KEYS = ("bool", "int", "long", "float", "double", "string")
TYPE_KEYS = BUILTIN_KEYS + ("json", PROTO_TYPE_KEY)

_type_cache: dict[tuple[int, str], Any] = {}


def type_for(sf, key: str):
    """The ``Type`` object of module ``sf`` for a type key (built with that module's public API)."""
    cache_key = (id(sf), key)
    t = _type_cache.get(cache_key)
    if t is None:
        if key == "json":
            t = sf.make_json_type(JSON_TYPENAME)
        elif key == PROTO_TYPE_KEY:
            t = sf.make_protobuf_type(Duration)
        else:
            t = {
                "bool": sf.BoolType,
                "int": sf.IntType,
                "long": sf.LongType,
                "float": sf.FloatType,
                "double": sf.DoubleType,
                "string": sf.StringType,
            }[key]
        _type_cache[cache_key] = t
    return t


def typename_of(key: str) -> str:
    return type_for(official, key).typename


def encode_with_official(key: str, value) -> bytes:
    """Bytes the official SDK's serializer produces for ``value`` (used to build requests)."""
    return type_for(official, key).serializer().serialize(value)


# --------------------------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------------------------


def family(exc: BaseException) -> str:
    """A coarse exception family, so both implementations may raise different subclasses of the same kind."""
    for cls in (KeyError, AttributeError, TypeError, ValueError):
        if isinstance(exc, cls):
            return cls.__name__
    if isinstance(exc, ProtobufError):
        return "ProtobufError"
    if isinstance(exc, struct.error):
        # the official kafka_egress_message lets struct.pack's error out for an int beyond 32 bits; ours raises a
        # ValueError there. Loosely the same family: "this value cannot be encoded".
        return "ValueError"
    return type(exc).__name__


def describe(value) -> str:
    """A representation that is equal for equal values across both implementations."""
    if value is None:
        return "None"
    if isinstance(value, ProtobufMessage):
        return f"pb:{value.DESCRIPTOR.full_name}:{value.SerializeToString(deterministic=True).hex()}"
    if isinstance(value, (bytes, bytearray)):
        return f"{type(value).__name__}:{bytes(value).hex()}"
    if hasattr(value, "namespace") and hasattr(value, "typename") and hasattr(value, "id"):
        # an SdkAddress (a different class in each implementation)
        return f"addr:{value.namespace!r},{value.name!r},{value.id!r},{value.typename!r}"
    return f"{type(value).__name__}:{value!r}"


class ScriptBoom(Exception):
    """The exception a generated function raises on purpose."""


# --------------------------------------------------------------------------------------------------------------
# Function definitions
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str
    type_key: str
    ttl: tuple[str, timedelta] | None = None  # ("call"|"write", duration)

    def build(self, sf):
        kwargs = {}
        if self.ttl is not None:
            kind, duration = self.ttl
            kwargs["expire_after_call" if kind == "call" else "expire_after_write"] = duration
        return sf.ValueSpec(name=self.name, type=type_for(sf, self.type_key), **kwargs)


# An Op is a plain tuple whose first element names the operation (see ``run_op``); tuples print well.
Op = tuple


@dataclass(frozen=True)
class FunctionDef:
    typename: str
    specs: tuple[Spec, ...]
    scripts: tuple[tuple[Op, ...], ...]  # invocation i runs scripts[i % len(scripts)]
    is_async: bool = False


def build_message(sf, ctx, target: tuple, payload: tuple):
    """target: ("fixed", typename, id) | ("self",) | ("caller",); payload: (kw, value) | ("value", type_key, value)."""
    if target[0] == "self":
        typename, id_ = ctx.address.typename, ctx.address.id
    elif target[0] == "caller":
        caller = ctx.caller
        if caller is None:
            return None
        typename, id_ = caller.typename, caller.id
    else:
        _, typename, id_ = target
    if payload[0] == "value":
        _, key, value = payload
        return sf.message_builder(typename, id_, value=value, value_type=type_for(sf, key))
    kw, value = payload
    return sf.message_builder(typename, id_, **{kw: value})


EGRESS_SENT = "egress sent"
EGRESS_JSON_RECORD_SENT = "egress sent: a Kafka or Kinesis record with a JSON value"
"""Observed after each egress message, in order: which records' bytes hold a JSON value (``with_json_canonical``)."""


def run_op(sf, ctx, message, op: Op, obs: Callable[[str], None]) -> None:
    kind = op[0]
    storage = ctx.storage
    if kind == "read":
        obs(f"read {op[1]}=" + describe(getattr(storage, op[1])))
    elif kind == "write":
        setattr(storage, op[1], op[2])
    elif kind == "delete":
        delattr(storage, op[1])
    elif kind == "iadd":
        name, value = op[1], op[2]
        current = getattr(storage, name)
        current += value
        setattr(storage, name, current)
        obs(f"iadd {name}=" + describe(current))
    elif kind == "send":
        msg = build_message(sf, ctx, op[1], op[2])
        if msg is not None:
            ctx.send(msg)
    elif kind == "send_after":
        _, target, payload, delay, token = op
        msg = build_message(sf, ctx, target, payload)
        if msg is None:
            return
        if token[0] == "omit":
            ctx.send_after(delay, msg)
        elif token[0] == "kw":
            ctx.send_after(delay, msg, cancellation_token=token[1])
        else:
            ctx.send_after(delay, msg, token[1])
    elif kind == "cancel":
        ctx.cancel_delayed_message(op[1])
    elif kind == "egress":
        _, typename, key, value = op
        ctx.send_egress(sf.egress_message_builder(typename, value, type_for(sf, key)))
        obs(EGRESS_SENT)
    elif kind == "kafka":
        _, typename, topic, value, key, vtype = op
        kwargs = {}
        if key is not None:
            kwargs["key"] = key
        if vtype is not None:
            kwargs["value_type"] = type_for(sf, vtype)
        ctx.send_egress(sf.kafka_egress_message(typename, topic, value, **kwargs))
        obs(EGRESS_JSON_RECORD_SENT if vtype == "json" else EGRESS_SENT)
    elif kind == "kinesis":
        _, typename, stream, value, partition_key, hash_key, vtype = op
        kwargs = {}
        if hash_key is not None:
            kwargs["explicit_hash_key"] = hash_key
        if vtype is not None:
            kwargs["value_type"] = type_for(sf, vtype)
        ctx.send_egress(sf.kinesis_egress_message(typename, stream, value, partition_key, **kwargs))
        obs(EGRESS_JSON_RECORD_SENT if vtype == "json" else EGRESS_SENT)
    elif kind == "msg":
        accessor = op[1]
        if accessor.startswith("is_type:"):
            result = message.is_type(type_for(sf, accessor.split(":", 1)[1]))
        elif accessor.startswith("as_type:"):
            result = message.as_type(type_for(sf, accessor.split(":", 1)[1]))
        else:
            result = getattr(message, accessor)()
        obs(f"msg {accessor}=" + describe(result))
    elif kind == "context":
        obs("address=" + describe(ctx.address) + " caller=" + describe(ctx.caller))
    elif kind == "raise":
        raise ScriptBoom(op[1] if len(op) > 1 else "boom")
    else:  # pragma: no cover - a bug in the strategies
        raise AssertionError(f"unknown op {op!r}")


class Sink(list):
    """Observations of one handler run, plus the per-function invocation counters (reset with the list)."""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}

    def reset(self):
        self.clear()
        self.counts.clear()


def build_functions(sf, fdef: FunctionDef, sink: Sink, *, extra: tuple[FunctionDef, ...] = ()):
    """A ``StatefulFunctions`` of module ``sf`` with ``fdef`` (and ``extra``) bound; observations go to ``sink``."""
    functions = sf.StatefulFunctions()
    for d in (fdef,) + tuple(extra):
        _bind(sf, functions, d, sink)
    return functions


def _bind(sf, functions, fdef: FunctionDef, sink: Sink) -> None:
    def body(context, message):
        index = sink.counts.get(fdef.typename, 0)
        sink.counts[fdef.typename] = index + 1
        script = fdef.scripts[index % len(fdef.scripts)] if fdef.scripts else ()
        sink.append(f"-- {fdef.typename} invocation {index}")
        for op in script:
            try:
                run_op(sf, context, message, op, sink.append)
            except ScriptBoom:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded and compared
                sink.append(f"{op[0]} raised {family(exc)}")

    specs = [s.build(sf) for s in fdef.specs]
    if fdef.is_async:

        async def fun(context, message):
            await asyncio.sleep(0)
            body(context, message)

        functions.register(fdef.typename, fun, specs)
    else:

        def fun(context, message):
            body(context, message)

        functions.register(fdef.typename, fun, specs)


# --------------------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TV:
    """A TypedValue description."""

    typename: str
    has_value: bool
    value: bytes

    def to_pb(self) -> TypedValue:
        return TypedValue(typename=self.typename, has_value=self.has_value, value=self.value)


@dataclass(frozen=True)
class StateEntry:
    name: str
    value: TV | None  # None: PersistedValue with state_name only


@dataclass(frozen=True)
class Invocation:
    caller: tuple[str, str, str] | None  # None: no caller field at all
    argument: TV | None  # None: no argument field at all


@dataclass(frozen=True)
class RequestDef:
    target: tuple[str, str, str]  # namespace, type, id
    states: tuple[StateEntry, ...]
    invocations: tuple[Invocation, ...]

    def to_pb(self) -> ToFunction:
        req = ToFunction()
        batch = req.invocation
        ns, tp, id_ = self.target
        batch.target.CopyFrom(Address(namespace=ns, type=tp, id=id_))
        for s in self.states:
            pv = batch.state.add()
            pv.state_name = s.name
            if s.value is not None:
                pv.state_value.CopyFrom(s.value.to_pb())
        for inv in self.invocations:
            pb = batch.invocations.add()
            if inv.caller is not None:
                pb.caller.SetInParent()
                ns_, tp_, id__ = inv.caller
                pb.caller.namespace, pb.caller.type, pb.caller.id = ns_, tp_, id__
            if inv.argument is not None:
                pb.argument.CopyFrom(inv.argument.to_pb())
        return req

    def to_bytes(self) -> bytes:
        return self.to_pb().SerializeToString()


def request_text(body: bytes) -> str:
    try:
        return text_format.MessageToString(ToFunction.FromString(body), as_utf8=True)
    except Exception as exc:  # noqa: BLE001
        return f"<unparsable: {exc!r}>"


# --------------------------------------------------------------------------------------------------------------
# Running and comparing
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    response: bytes | None = None
    error: BaseException | None = None
    observations: list[str] = field(default_factory=list)

    def error_family(self) -> str | None:
        if self.error is None:
            return None
        return family(root_error(self.error))


def root_error(exc: BaseException) -> BaseException:
    """Ours wraps a user exception in ``FunctionError`` with the original as ``__cause__``; unwrap that."""
    if isinstance(exc, ours.FunctionError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def release_ours_handler(handler) -> None:
    """Close the event loop ours keeps per handler and thread for ``handle_sync`` of async functions.

    The differential tests make one handler per example; left to the garbage collector these loops raise
    ResourceWarning (an error under this project's warning filter). The leak itself is checked by
    test_edge_cases.py::test_dropped_handler_leaks_no_event_loop; this only keeps it out of the other tests.
    """
    close = getattr(handler, "close", None)
    if callable(close):
        close()
        return
    loop = getattr(getattr(handler, "_local", None), "loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()


_loop: asyncio.AbstractEventLoop | None = None


def run_coro(coro):
    """Run a coroutine on one long-lived private loop (the official handle_async needs a loop, not a fresh one)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def run_handler(call: Callable[[], Any], sink: Sink) -> Outcome:
    sink.reset()
    out = Outcome()
    try:
        out.response = call()
    except Exception as exc:  # noqa: BLE001 - compared by the caller
        out.error = exc
    out.observations = list(sink)
    return out


def normalized(response: bytes) -> FromFunction:
    """Parse a response with the official classes; sort state mutations by name (the only allowed reordering)."""
    msg = FromFunction.FromString(response)
    if msg.WhichOneof("response") == "invocation_result":
        muts = sorted(msg.invocation_result.state_mutations, key=lambda m: m.state_name)
        copies = [FromFunction.PersistedValueMutation() for _ in muts]
        for c, m in zip(copies, muts, strict=True):
            c.CopyFrom(m)
        del msg.invocation_result.state_mutations[:]
        msg.invocation_result.state_mutations.extend(copies)
    return msg


def response_text(response: bytes | None) -> str:
    if response is None:
        return "<none>"
    try:
        return f"{len(response)} bytes: " + text_format.MessageToString(FromFunction.FromString(response), as_utf8=True)
    except Exception as exc:  # noqa: BLE001
        return f"<unparsable {response!r}: {exc!r}>"


def mutation_order(response: bytes) -> list[str]:
    msg = FromFunction.FromString(response)
    return [m.state_name for m in msg.invocation_result.state_mutations]


def _json_canonical(data: bytes) -> bytes:
    """One spelling per JSON value: the standard library's, of what ``json.loads`` reads (bytes that are not
    JSON are left as they are, and compared as bytes)."""
    try:
        return json.dumps(json.loads(data), ensure_ascii=False).encode("utf-8")
    except ValueError:  # NOTE: also UnicodeDecodeError
        return data


def with_json_canonical(response: bytes, json_records: list[bool], json_typenames: Collection[str]) -> bytes:
    """The response with every JSON-typed value respelled by ``_json_canonical``: state, messages and egress
    values of the types ``json_typenames`` names, and the values of the Kafka and Kinesis records
    ``json_records`` flags (one flag per egress message).

    For JSON types the contract is the same value, not the same bytes (docs/json.md): two responses equal after
    this hold equal values, with equal types (1 and 1.0 spell differently) and keys in the same order."""
    msg = FromFunction.FromString(response)
    if msg.WhichOneof("response") != "invocation_result":
        return response
    result = msg.invocation_result
    values = [m.state_value for m in result.state_mutations]
    values += [m.argument for m in result.outgoing_messages]
    values += [m.argument for m in result.delayed_invocations]
    values += [m.argument for m in result.outgoing_egresses]
    for value in values:
        if value.typename in json_typenames and value.has_value:
            value.value = _json_canonical(value.value)
    # NOTE: not strict: a response with another number of egress messages fails the comparison anyway.
    for egress, is_json in zip(result.outgoing_egresses, json_records, strict=False):
        if is_json:
            kafka = egress.argument.typename.endswith("/" + KafkaProducerRecord.DESCRIPTOR.full_name)
            record = (KafkaProducerRecord if kafka else KinesisEgressRecord).FromString(egress.argument.value)
            record.value_bytes = _json_canonical(record.value_bytes)
            egress.argument.value = record.SerializeToString()
    return msg.SerializeToString()


def compare_outcomes(expected: Outcome, actual: Outcome, label: str,
                     json_typenames: Collection[str] = (JSON_TYPENAME,)) -> None:
    """Assert that ``actual`` (ours) matches ``expected`` (official) as the protocol requires: the same bytes,
    except that a JSON-typed value need only be the same value (``with_json_canonical``)."""
    context = (
        f"[{label}]\nofficial: error={expected.error!r} response={response_text(expected.response)}\n"
        f"ours:     error={actual.error!r} (root {root_error(actual.error)!r}) "
        f"response={response_text(actual.response)}\n"
        f"official observations={expected.observations}\nours observations={actual.observations}"
        if actual.error is not None
        else f"[{label}]\nofficial: error={expected.error!r} response={response_text(expected.response)}\n"
        f"ours:     response={response_text(actual.response)}\n"
        f"official observations={expected.observations}\nours observations={actual.observations}"
    )
    if expected.error is not None or actual.error is not None:
        assert expected.error is not None and actual.error is not None, "one raised, the other did not\n" + context
        assert expected.error_family() == actual.error_family(), "different exception families\n" + context
        assert expected.observations == actual.observations, "different observations\n" + context
        return
    assert isinstance(actual.response, bytes), f"response is not bytes: {type(actual.response)!r}\n" + context
    assert expected.observations == actual.observations, "different observations\n" + context
    if expected.response == b"":
        assert actual.response == b"", "an empty response must be an empty response\n" + context
        return
    json_records = [o == EGRESS_JSON_RECORD_SENT for o in expected.observations
                    if o in (EGRESS_SENT, EGRESS_JSON_RECORD_SENT)]
    expected_json = with_json_canonical(expected.response, json_records, json_typenames)
    actual_json = with_json_canonical(actual.response, json_records, json_typenames)
    assert normalized(expected_json) == normalized(actual_json), "different FromFunction\n" + context
    if mutation_order(expected.response) == mutation_order(actual.response) and actual_json == actual.response:
        assert expected.response == actual.response, "equal messages, different bytes\n" + context
    else:
        # reordered mutations, or JSON spelled otherwise: ours must still be canonically encoded (what protobuf
        # itself would write), so that no byte differs but those of the mutations' order and the JSON values
        assert actual.response == FromFunction.FromString(actual.response).SerializeToString(), (
            "non-canonical encoding\n" + context
        )


# --------------------------------------------------------------------------------------------------------------
# Small helpers for hand-written tests
# --------------------------------------------------------------------------------------------------------------


def to_function(target=("org.foo", "greeter", "0"), states=(), invocations=()) -> bytes:
    req = ToFunction()
    b = req.invocation
    b.target.namespace, b.target.type, b.target.id = target
    for name, tv in states:
        pv = b.state.add()
        pv.state_name = name
        if tv is not None:
            pv.state_value.CopyFrom(tv)
    for caller, arg in invocations:
        inv = b.invocations.add()
        if caller is not None:
            inv.caller.namespace, inv.caller.type, inv.caller.id = caller
        inv.argument.CopyFrom(arg)
    return req.SerializeToString()


def typed(sf_type, value) -> TypedValue:
    return TypedValue(typename=sf_type.typename, has_value=True, value=sf_type.serializer().serialize(value))


def handle(sf, functions, body: bytes) -> bytes:
    handler = sf.RequestReplyHandler(functions)
    try:
        return handler.handle_sync(body)
    finally:
        release_ours_handler(handler)
