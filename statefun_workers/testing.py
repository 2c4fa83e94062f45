"""Test StateFun functions in-process, through the production request-reply handler, with virtual time.

Two entry points (docs/testing.md is the guide):

* :func:`call` runs one batch of one function with the state and messages you give, and returns its
  :class:`Effects` as plain objects: the state after the batch, what was written and deleted, messages sent,
  delayed messages and cancellations, egress records (Kafka and Kinesis records decoded).
* :class:`Flow` is a small runtime: it keeps state per address, routes messages between the functions of one
  or more registries, keeps delayed messages and cancellation tokens per sender, expires state as the StateFun
  runtime does (after write, or after call), collects egress records, and keeps a trace. Time is virtual:
  :meth:`Flow.advance` moves the clock and delivers what falls due; nothing sleeps.

Every batch goes through :class:`~statefun_workers.RequestReplyHandler` as bytes, as over HTTP, including the
``IncompleteInvocationContext`` round trip by which the runtime learns a function's state. Whatever the runtime
would refuse or fail the job on (a message to a function type nobody serves, an egress it was not told of, a
second pending delayed message with the same token from one address, a state whose type changes, a mutation of a
state it never registered) raises :class:`RuntimeWouldFail`, an ``AssertionError`` that says what the runtime
would do. Only the standard library and this package are used: no test framework is required (under pytest,
``__tracebackhide__`` in the kit's functions points a failure at the test's line rather than the kit's).
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ._proto.kafka_egress_pb2 import KafkaProducerRecord
from ._proto.kinesis_egress_pb2 import KinesisEgressRecord
from ._proto.request_reply_pb2 import FromFunction, ToFunction, TypedValue
from .egress import KAFKA_RECORD_TYPENAME, KINESIS_RECORD_TYPENAME
from .functions import StatefulFunction, StatefulFunctions
from .handler import RequestReplyHandler
from .messages import Message, encode_value
from .types import BoolType, DoubleType, FloatType, IntType, LongType, StringType, Type, codec

__all__ = ["Address", "Delayed", "Effects", "Egress", "Flow", "KafkaRecord", "KinesisRecord", "RuntimeWouldFail",
           "Sent", "Value", "call", "typed_value"]

_BUILTINS = {t.typename: t for t in (BoolType, DoubleType, FloatType, IntType, LongType, StringType)}
_AFTER_WRITE, _AFTER_INVOKE = 1, 2
_MAX_HANDSHAKES = 3
"""IncompleteInvocationContext answers in a row for one batch before the kit gives up (the runtime never does)."""


class RuntimeWouldFail(AssertionError):
    """The StateFun runtime would refuse this, or fail the job on it (and, replaying it, fail again)."""


# --- plain values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """A function instance: ``typename`` (``namespace/name``) and ``id``."""

    typename: str
    id: str

    def __str__(self) -> str:
        return f"{self.typename}/{self.id}"


@dataclass(frozen=True)
class Value:
    """A typed value as it travels: its ``typename`` and its bytes (``data``; ``None`` when it has none)."""

    typename: str
    data: bytes | None

    @property
    def value(self) -> Any:
        """The value of a built-in type (str, int, bool, float), decoded; use :meth:`as_type` for others."""
        tpe = _BUILTINS.get(self.typename)
        if tpe is None:
            raise TypeError(f"{self.typename} is not a built-in type: read it with as_type(<its Type>)")
        return self.as_type(tpe)

    def as_type(self, tpe: Type) -> Any:
        """The value decoded as ``tpe`` (``None`` when there is none); the typenames must match."""
        if tpe.typename != self.typename:
            raise TypeError(f"the value is a {self.typename}, not a {tpe.typename}")
        return None if self.data is None else codec(tpe)[1](self.data)

    def __str__(self) -> str:
        return f"{self.typename} {_show(self)}"


@dataclass(frozen=True)
class Sent:
    """A message a function sent: where to, and its value."""

    to: Address
    value: Value

    def as_type(self, tpe: Type) -> Any:
        return self.value.as_type(tpe)


@dataclass(frozen=True)
class Delayed:
    """A message sent with ``send_after``: its delay, where to, its value, its cancellation token (or None)."""

    delay: timedelta
    to: Address
    value: Value
    token: str | None

    def as_type(self, tpe: Type) -> Any:
        return self.value.as_type(tpe)


@dataclass(frozen=True)
class KafkaRecord:
    """A record for a Kafka egress: ``key`` is ``None`` when the record has none (the runtime sends it keyless)."""

    topic: str
    key: str | None
    value: bytes

    def as_type(self, tpe: Type) -> Any:
        """The value decoded as ``tpe`` (for a record built with ``value_type=tpe``)."""
        return codec(tpe)[1](self.value)

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass(frozen=True)
class KinesisRecord:
    """A record for a Kinesis egress."""

    stream: str
    partition_key: str
    value: bytes
    explicit_hash_key: str | None

    def as_type(self, tpe: Type) -> Any:
        return codec(tpe)[1](self.value)

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass(frozen=True)
class Egress:
    """A record sent to the egress ``egress`` (its id): the value as sent, and the decoded Kafka or Kinesis
    record when it is one."""

    egress: str
    value: Value
    kafka: KafkaRecord | None = None
    kinesis: KinesisRecord | None = None

    def as_type(self, tpe: Type) -> Any:
        return self.value.as_type(tpe)


@dataclass
class Effects:
    """What one batch did, as the runtime receives it."""

    address: Address
    state: dict[str, Any] = field(default_factory=dict)
    """Every state with a value after the batch, decoded with its ValueSpec's type."""
    written: dict[str, Any] = field(default_factory=dict)
    """The states the batch wrote, with their new values."""
    deleted: set[str] = field(default_factory=set)
    messages: list[Sent] = field(default_factory=list)
    delayed: list[Delayed] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    """Cancellation tokens, in order."""
    egress: list[Egress] = field(default_factory=list)
    _mutations: list[tuple[str, Value | None]] = field(default_factory=list, repr=False)
    _delayed_ops: list[Delayed | str] = field(default_factory=list, repr=False)
    """Delayed messages and cancellations interleaved, as the runtime applies them."""


# --- one batch through the handler ----------------------------------------------------------------------------


@dataclass
class _Registered:
    """A state as the runtime registered it: first registration wins (its type and TTL never change)."""

    typename: str
    mode: int
    ttl_ms: int


def _value(tv: TypedValue) -> Value:
    return Value(tv.typename, tv.value if tv.has_value else None)


def _typed(value: Value) -> TypedValue:
    if value.data is None:
        return TypedValue(typename=value.typename, has_value=False)
    return TypedValue(typename=value.typename, has_value=True, value=value.data)


def typed_value(value: Any, tpe: Type | None = None) -> Value:
    """``value`` as a :class:`Value`: encoded as ``tpe``, or taken from a ``Message``, or a ``str``, ``bool`` or
    ``int`` as the built-in string, bool and int types."""
    if isinstance(value, Value):
        return value
    if isinstance(value, Message):
        return _value(TypedValue.FromString(value.encoded_value()))
    if tpe is None:
        if isinstance(value, str):
            tpe = StringType
        elif isinstance(value, bool):
            tpe = BoolType
        elif isinstance(value, int):
            tpe = IntType
        else:
            hint = " (FloatType or DoubleType)" if isinstance(value, float) else ""
            raise TypeError(f"say which type {value!r} is{hint}: pass type=<a Type>")
    return _value(TypedValue.FromString(encode_value(tpe, value)))


def _exchange(handler: RequestReplyHandler, target: Address, invocations: list[tuple[Value, Address | None]],
              attach: Any, register: Any) -> FromFunction.InvocationResponse:
    """Send one batch as the runtime does: with the registered state attached (``attach()``), registering what
    an IncompleteInvocationContext names (``register(spec)``) and re-sending the same invocations."""
    __tracebackhide__ = True
    namespace, _, name = target.typename.partition("/")
    for _ in range(_MAX_HANDSHAKES):
        request = ToFunction()
        batch = request.invocation
        batch.target.namespace, batch.target.type, batch.target.id = namespace, name, target.id
        for state_name, value in attach():
            state = batch.state.add(state_name=state_name)
            if value is not None:
                state.state_value.CopyFrom(_typed(value))
        for argument, caller in invocations:
            invocation = batch.invocations.add(argument=_typed(argument))
            if caller is not None:
                caller_namespace, _, caller_name = caller.typename.partition("/")
                invocation.caller.namespace, invocation.caller.type = caller_namespace, caller_name
                invocation.caller.id = caller.id
        result = handler.dispatch_sync(request.SerializeToString())
        if result.error is not None:
            raise result.error
        reply = FromFunction.FromString(result.response)
        if reply.WhichOneof("response") != "incomplete_invocation_context":
            return reply.invocation_result
        for spec in reply.incomplete_invocation_context.missing_values:
            register(spec)
    raise RuntimeWouldFail(
        f"{target}: the function answered IncompleteInvocationContext {_MAX_HANDSHAKES} times in a row although "
        f"the runtime sent every state it asked for; the runtime would re-send this batch forever")


def _effects(target: Address, response: FromFunction.InvocationResponse, before: dict[str, Value | None],
             function: StatefulFunction) -> Effects:
    __tracebackhide__ = True
    effects = Effects(target)
    after = dict(before)
    for mutation in response.state_mutations:
        name = mutation.state_name
        if mutation.mutation_type == FromFunction.PersistedValueMutation.MODIFY:
            value = Value(mutation.state_value.typename, mutation.state_value.value)
            after[name] = value
            effects._mutations.append((name, value))
            effects.deleted.discard(name)
            effects.written[name] = _decode_state(function, name, value)
        else:
            after[name] = None
            effects._mutations.append((name, None))
            effects.written.pop(name, None)
            effects.deleted.add(name)
    effects.state = {name: _decode_state(function, name, value) for name, value in after.items()
                     if value is not None}
    for message in response.outgoing_messages:
        effects.messages.append(Sent(_address(message.target), _value(message.argument)))
    for delayed in response.delayed_invocations:
        if delayed.is_cancellation_request:
            effects.cancelled.append(delayed.cancellation_token)
            effects._delayed_ops.append(delayed.cancellation_token)
            continue
        if delayed.delay_in_ms < 0:
            raise RuntimeWouldFail(f"{target} sent a message with a negative delay ({delayed.delay_in_ms} ms): "
                                   f"the runtime fails the job")
        sent = Delayed(timedelta(milliseconds=delayed.delay_in_ms), _address(delayed.target),
                       _value(delayed.argument), delayed.cancellation_token or None)
        effects.delayed.append(sent)
        effects._delayed_ops.append(sent)
    for egress in response.outgoing_egresses:
        effects.egress.append(_egress(f"{egress.egress_namespace}/{egress.egress_type}", _value(egress.argument)))
    return effects


def _address(address: Any) -> Address:
    return Address(f"{address.namespace}/{address.type}", address.id)


def _egress(egress_id: str, value: Value) -> Egress:
    data = value.data or b""
    if value.typename == KAFKA_RECORD_TYPENAME:
        kafka = KafkaProducerRecord.FromString(data)
        return Egress(egress_id, value, kafka=KafkaRecord(kafka.topic, kafka.key or None, kafka.value_bytes))
    if value.typename == KINESIS_RECORD_TYPENAME:
        kinesis = KinesisEgressRecord.FromString(data)
        return Egress(egress_id, value, kinesis=KinesisRecord(kinesis.stream, kinesis.partition_key,
                                                              kinesis.value_bytes, kinesis.explicit_hash_key or None))
    return Egress(egress_id, value)


def _decode_state(function: StatefulFunction, name: str, value: Value) -> Any:
    for spec in function.specs:
        if spec.name == name and spec.type.typename == value.typename:
            return value.as_type(spec.type)
    return value  # a state the function no longer declares, or of another type: as it is stored


def _spec_text(spec: Any) -> str:
    ttl = spec.expiration_spec
    if ttl.mode == _AFTER_WRITE:
        return f"{spec.type_typename}, expires {ttl.expire_after_millis} ms after write"
    if ttl.mode == _AFTER_INVOKE:
        return f"{spec.type_typename}, expires {ttl.expire_after_millis} ms after call"
    return spec.type_typename  # type: ignore[no-any-return]


def _find(registries: Iterable[StatefulFunctions], typename: str) -> tuple[StatefulFunction, StatefulFunctions]:
    for registry in registries:
        function = registry.functions.get(typename)
        if function is not None:
            return function, registry
    raise KeyError(typename)


def _distinct(registries: Iterable[StatefulFunctions]) -> list[StatefulFunctions]:
    """The registries of a flow: at least one, and no typename bound in two (which would the runtime call?)."""
    registries = list(registries)
    if not registries:
        raise ValueError("a Flow needs at least one StatefulFunctions registry")
    bound: set[str] = set()
    for registry in registries:
        twice = bound & registry.functions.keys()
        if twice:
            raise ValueError(f"{', '.join(sorted(twice))} bound in two registries: a flow serves each typename once")
        bound |= registry.functions.keys()
    return registries


def call(functions: StatefulFunctions, typename: str, id: str, *messages: Any, type: Type | None = None,
         state: Mapping[str, Any] | None = None, caller: Address | tuple[str, str] | None = None) -> Effects:
    """Run one batch of the function bound to ``typename``, instance ``id``, and return its effects.

    ``messages`` are values (encoded as ``type``; a ``str``, ``bool`` or ``int`` needs none) or ``Message``
    objects; ``state`` maps state names to values, absent names having no value; ``caller`` is the sender every
    message appears to come from (``None``: an ingress). The state goes to the function as the runtime sends it
    after a restart: first not at all, then, once the function named what it needs, with every value attached.
    """
    __tracebackhide__ = True
    function = functions.for_typename(typename)
    sender = Address(*caller) if isinstance(caller, tuple) else caller
    values = {spec.name: spec for spec in function.specs}
    unknown = set(state or ()) - values.keys()
    if unknown:
        raise ValueError(f"{typename} has no state {', '.join(sorted(unknown))}; it declares "
                         f"{', '.join(values) or 'none'}")
    given = {name: None if value is None else typed_value(value, values[name].type)
             for name, value in (state or {}).items()}
    registered: dict[str, Value | None] = {}
    target = Address(typename, id)
    handler = RequestReplyHandler(functions)
    try:
        response = _exchange(handler, target, [(typed_value(m, type), sender) for m in messages],
                             lambda: list(registered.items()),
                             lambda spec: registered.setdefault(spec.state_name, given.get(spec.state_name)))
    finally:
        handler.close()
    effects = _effects(target, response, registered, function)
    tokens = [d.token for d in effects.delayed if d.token]
    duplicate = {t for t in tokens if tokens.count(t) > 1}
    if duplicate:
        raise RuntimeWouldFail(f"{target} sent two delayed messages with the token {sorted(duplicate)[0]!r}: the "
                               f"runtime fails the job on a second pending message with a token of the same sender")
    return effects


# --- the flow -------------------------------------------------------------------------------------------------


@dataclass
class _Stored:
    value: Value
    touched_ms: int
    """When the TTL clock last restarted: the last write, or (expire after call) the last call too."""


@dataclass(order=True)
class _Timer:
    due_ms: int
    seq: int
    sender: Address = field(compare=False)
    message: Delayed = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


_FLOWS: weakref.WeakSet[Flow] = weakref.WeakSet()
"""Every live Flow, so the pytest plugin (pytest_plugin.py) can show the traces of a failed test's flows."""
_SERIALS = itertools.count()
_EVENTS = [0]
"""Trace lines written by all flows so far: the plugin shows the flows that wrote any during the failed test."""


class Flow:
    """An in-process StateFun runtime for the functions of ``registries``, with a virtual clock.

    ``egresses`` names the egress ids the runtime's module declares; a mapping may give each a kind
    (``"kafka"``, ``"kinesis"`` or ``"any"``), and a Kafka or Kinesis egress then takes only its own records.
    Messages run in a deterministic order: first in, first out, and the messages queued for one address run
    as one batch, as the runtime batches what arrives while a request is in flight.
    """

    def __init__(self, *registries: StatefulFunctions, egresses: Iterable[str] | Mapping[str, str] = (),
                 max_batches: int = 10_000) -> None:
        self._registries = _distinct(registries)
        self._handlers: dict[int, RequestReplyHandler] = {}
        kinds = dict(egresses) if isinstance(egresses, Mapping) else dict.fromkeys(egresses, "any")
        for egress_id, kind in kinds.items():
            if kind not in ("any", "kafka", "kinesis"):
                raise ValueError(f"egress {egress_id}: kind must be 'kafka', 'kinesis' or 'any', not {kind!r}")
        self._egresses = kinds
        self.max_batches = max_batches
        """How many batches one settling may run before the flow calls it a loop and fails."""
        self._now_ms = 0
        self._seq = 0
        self._queue: deque[tuple[Address, Value, Address | None]] = deque()
        self._state: dict[Address, dict[str, _Stored]] = {}
        self._registered: dict[str, dict[str, _Registered]] = {}
        self._timers: list[_Timer] = []
        self._tokens: dict[tuple[Address, str], _Timer] = {}
        self._egress: list[Egress] = []
        self._trace: list[str] = []
        self._last_event = 0
        self._serial = next(_SERIALS)
        self.batches = 0
        """Batches run so far (IncompleteInvocationContext round trips not counted)."""
        _FLOWS.add(self)

    # --- what a test does ---

    @property
    def now(self) -> timedelta:
        """The virtual clock: time since the flow started."""
        return timedelta(milliseconds=self._now_ms)

    def send(self, typename: str, id: str, value: Any, type: Type | None = None, *,
             caller: Address | tuple[str, str] | None = None, run: bool = True) -> None:
        """Send a message to ``typename``/``id`` as an ingress would (or from ``caller``), then run the flow
        until nothing is left to do at the current time (``run=False`` only queues it; see :meth:`run`)."""
        __tracebackhide__ = True
        self._route(Address(typename, id), typed_value(value, type),
                    Address(*caller) if isinstance(caller, tuple) else caller, "ingress" if caller is None else "")
        if run:
            self.run()

    def deploy(self, *registries: StatefulFunctions) -> None:
        """Serve new versions of the functions from now on, as a rolling upgrade of the workers does: the
        runtime keeps its state, its pending messages and the states it registered (with their types)."""
        new = _distinct(registries)
        self.close()
        self._registries = new
        self._log(f"deploy: {', '.join(sorted(t for r in registries for t in r.functions))}")

    def run(self) -> None:
        """Run queued messages, and delayed messages due by now, until none is left."""
        __tracebackhide__ = True
        batches = 0
        while True:
            if not self._queue:
                due = self._next_due(self._now_ms)
                if due is None:
                    return
                self._deliver(due)
                continue
            batches += 1
            if batches > self.max_batches:
                raise RuntimeWouldFail(f"the flow did not settle within {self.max_batches} batches (a message loop?)"
                                       f"\n{self._trace_tail()}")
            self._run_batch()

    def advance(self, duration: timedelta) -> None:
        """Move the clock forward by ``duration``, delivering each delayed message when it falls due."""
        __tracebackhide__ = True
        if duration < timedelta(0):
            raise ValueError("the clock only moves forward")
        self.run()
        until = self._now_ms + int(duration / timedelta(milliseconds=1))
        while True:
            timer = self._next_due(until)
            if timer is None:
                break
            self._now_ms = max(self._now_ms, timer.due_ms)
            self._deliver(timer)
            self.run()
        self._now_ms = until

    def state(self, typename: str, id: str) -> dict[str, Any]:
        """The states of ``typename``/``id`` that have a value now (expired ones do not), decoded with the
        function's ValueSpec types. Looking does not count as a call."""
        address = Address(typename, id)
        try:
            function = _find(self._registries, typename)[0]
        except KeyError:
            raise ValueError(f"no function is bound to {typename} in this flow") from None
        stored = self._state.get(address, {})
        return {name: _decode_state(function, name, s.value) for name, s in stored.items()
                if not self._expired(typename, name, s)}

    def egress(self, egress_id: str | None = None, *, topic: str | None = None) -> list[Egress]:
        """The egress records sent so far, oldest first: all, or those of one egress id, or of one Kafka topic
        or Kinesis stream."""
        return [e for e in self._egress if (egress_id is None or e.egress == egress_id) and (
            topic is None or (e.kafka is not None and e.kafka.topic == topic)
            or (e.kinesis is not None and e.kinesis.stream == topic))]

    def pending(self) -> list[tuple[timedelta, Address, Delayed]]:
        """The delayed messages not delivered yet: (when due, sender, message), soonest first."""
        return [(timedelta(milliseconds=t.due_ms), t.sender, t.message)
                for t in sorted(self._timers) if not t.cancelled]

    @property
    def trace(self) -> str:
        """What went where, one line per event, for a failing test's output."""
        return "\n".join(self._trace)

    # --- the runtime's part ---

    def _function(self, address: Address, sender: str) -> StatefulFunction:
        __tracebackhide__ = True
        try:
            return _find(self._registries, address.typename)[0]
        except KeyError:
            served = sorted(t for r in self._registries for t in r.functions)
            raise RuntimeWouldFail(
                f"{sender or 'the test'} sent a message to {address}, but no function is bound to "
                f"{address.typename} (bound: {', '.join(served)}): the runtime fails the job (no provider for "
                f"that function type)\n{self._trace_tail()}") from None

    def _route(self, to: Address, value: Value, caller: Address | None, source: str) -> None:
        __tracebackhide__ = True
        self._function(to, str(caller) if caller else source)
        self._queue.append((to, value, caller))

    def _run_batch(self) -> None:
        __tracebackhide__ = True
        target, first, caller = self._queue.popleft()
        invocations = [(first, caller)]
        rest: deque[tuple[Address, Value, Address | None]] = deque()
        for queued in self._queue:
            if queued[0] == target:
                invocations.append((queued[1], queued[2]))
            else:
                rest.append(queued)
        self._queue = rest
        function, registry = _find(self._registries, target.typename)
        handler = self._handlers.get(id(registry))
        if handler is None:
            handler = self._handlers[id(registry)] = RequestReplyHandler(registry)
        self.batches += 1
        for argument, sender in invocations:
            self._log(f"{target} <- {sender or 'ingress'}: {argument}")
        sent: dict[str, Value | None] = {}

        def attach() -> list[tuple[str, Value | None]]:
            sent.clear()
            sent.update(self._read_state(target))
            return list(sent.items())

        try:
            response = _exchange(handler, target, invocations, attach,
                                 lambda spec: self._register(target.typename, spec))
        except Exception as ex:
            if not isinstance(ex, AssertionError) and hasattr(ex, "add_note"):
                ex.add_note(f"the runtime would retry this batch until its call budget runs out, then fail the "
                            f"job, and fail it again each time it replays the batch\n{self._trace_tail()}")
            raise
        self._apply(_effects(target, response, sent, function))

    def _register(self, typename: str, spec: Any) -> None:
        """Register a state an IncompleteInvocationContext named; the handler names only unregistered ones."""
        ttl = spec.expiration_spec
        self._registered.setdefault(typename, {})[spec.state_name] = _Registered(
            spec.type_typename or "io.statefun.types/unset", ttl.mode, ttl.expire_after_millis)
        self._log(f"  runtime registers state {spec.state_name!r} of {typename}: {_spec_text(spec)}")

    def _read_state(self, address: Address) -> list[tuple[str, Value | None]]:
        """The registered states as the runtime attaches them, expired ones without a value; a call restarts
        the TTL clock of the states that expire after call."""
        stored = self._state.setdefault(address, {})
        attached: list[tuple[str, Value | None]] = []
        for name, registered in self._registered.get(address.typename, {}).items():
            entry = stored.get(name)
            if entry is not None and self._expired(address.typename, name, entry):
                del stored[name]
                self._log(f"  {address}: state {name} expired")
                entry = None
            if entry is not None and registered.mode == _AFTER_INVOKE:
                entry.touched_ms = self._now_ms
            attached.append((name, None if entry is None else entry.value))
        return attached

    def _expired(self, typename: str, name: str, stored: _Stored) -> bool:
        registered = self._registered.get(typename, {}).get(name)
        if registered is None or not registered.mode or registered.ttl_ms <= 0:
            return False
        return stored.touched_ms + registered.ttl_ms <= self._now_ms

    def _apply(self, effects: Effects) -> None:
        """Apply a response in the runtime's order: messages, delayed messages and cancellations, egress, state."""
        __tracebackhide__ = True
        target = effects.address
        for message in effects.messages:
            self._log(f"  send {message.to}: {message.value}")
            self._route(message.to, message.value, target, "")
        for op in effects._delayed_ops:
            if isinstance(op, str):
                self._cancel(target, op)
            else:
                self._schedule(target, op)
        for record in effects.egress:
            self._emit(target, record)
        registered = self._registered.get(target.typename, {})
        stored = self._state.setdefault(target, {})
        for name, value in effects._mutations:
            known = registered.get(name)
            if known is None:
                raise RuntimeWouldFail(f"{target} changed state {name!r}, which the runtime never registered: it "
                                       f"fails the job\n{self._trace_tail()}")
            if value is None:
                stored.pop(name, None)
                self._log(f"  state {name} deleted")
                continue
            if value.typename != known.typename:
                raise RuntimeWouldFail(
                    f"{target} wrote state {name!r} as {value.typename}, but the runtime registered it as "
                    f"{known.typename}: it fails the job\n{self._trace_tail()}")
            stored[name] = _Stored(value, self._now_ms)
            self._log(f"  state {name} = {_show(value)}")

    def _schedule(self, sender: Address, message: Delayed) -> None:
        __tracebackhide__ = True
        self._function(message.to, str(sender))
        if message.token is not None:
            pending = self._tokens.get((sender, message.token))
            if pending is not None:
                raise RuntimeWouldFail(
                    f"{sender} sent a delayed message with the token {message.token!r} while its message with that "
                    f"token is still pending: the runtime fails the job\n{self._trace_tail()}")
        self._seq += 1
        delay_ms = int(message.delay / timedelta(milliseconds=1))
        timer = _Timer(self._now_ms + delay_ms, self._seq, sender, message)
        self._timers.append(timer)
        if message.token is not None:
            self._tokens[(sender, message.token)] = timer
        token = f" (token {message.token!r})" if message.token else ""
        self._log(f"  send {message.to} after {delay_ms} ms{token}: {message.value}")

    def _cancel(self, sender: Address, token: str) -> None:
        __tracebackhide__ = True
        if not token:
            raise RuntimeWouldFail(f"{sender} sent a cancellation without a token: the runtime fails the job")
        timer = self._tokens.pop((sender, token), None)
        if timer is None:
            self._log(f"  cancel {token!r}: nothing pending (the runtime ignores it)")
            return
        timer.cancelled = True
        self._timers.remove(timer)
        self._log(f"  cancel {token!r}: the message to {timer.message.to} will not be sent")

    def _emit(self, sender: Address, record: Egress) -> None:
        __tracebackhide__ = True
        kind = self._egresses.get(record.egress)
        if kind is None:
            declared = ", ".join(self._egresses) or "none; pass Flow(..., egresses=[...])"
            raise RuntimeWouldFail(
                f"{sender} sent a record to the egress {record.egress}, which the module does not declare "
                f"(declared: {declared}): the runtime fails the job\n{self._trace_tail()}")
        expected = {"kafka": KAFKA_RECORD_TYPENAME, "kinesis": KINESIS_RECORD_TYPENAME}.get(kind)
        if expected is not None and record.value.typename != expected:
            raise RuntimeWouldFail(
                f"{sender} sent a {record.value.typename} to the {kind} egress {record.egress}, which takes only "
                f"{expected} (use {kind}_egress_message): the runtime fails the job\n{self._trace_tail()}")
        self._egress.append(record)
        self._log(f"  egress {record.egress}: {_show_egress(record)}")

    def _next_due(self, until_ms: int) -> _Timer | None:
        if not self._timers:
            return None
        timer = min(self._timers)
        return timer if timer.due_ms <= until_ms else None

    def _deliver(self, timer: _Timer) -> None:
        self._timers.remove(timer)
        if timer.message.token is not None:
            self._tokens.pop((timer.sender, timer.message.token), None)
        self._queue.append((timer.message.to, timer.message.value, timer.sender))

    def _log(self, line: str) -> None:
        _EVENTS[0] += 1
        self._last_event = _EVENTS[0]
        if not line.startswith(" "):
            line = f"[{_ms(self._now_ms)}] {line}"
        else:
            line = " " * (len(_ms(self._now_ms)) + 2) + line
        self._trace.append(line)

    def _trace_tail(self, lines: int = 40) -> str:
        tail = self._trace[-lines:]
        cut = len(self._trace) - len(tail)
        return "trace" + (f" (last {lines} of {len(self._trace)} lines)" if cut else "") + ":\n" + "\n".join(tail)

    def close(self) -> None:
        """Close the handlers' event loops (also done when the flow is garbage-collected)."""
        for handler in self._handlers.values():
            handler.close()
        self._handlers.clear()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _ms(ms: int) -> str:
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:g} s"


def _show(value: Value, limit: int = 100) -> str:
    """A value for the trace: built-ins decoded, text as text, other bytes in hex; cut at ``limit``."""
    if value.data is None:
        return "(no value)"
    tpe = _BUILTINS.get(value.typename)
    if tpe is not None:
        text = repr(value.as_type(tpe))
    else:
        text = _text(value.data)
    return text if len(text) <= limit else text[:limit] + "..."


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.hex(" ")
    return text if text.isprintable() else data.hex(" ")


def _show_egress(record: Egress) -> str:
    if record.kafka is not None:
        key = "" if record.kafka.key is None else f" key={record.kafka.key}"
        return f"kafka topic={record.kafka.topic}{key}: {_text(record.kafka.value)}"
    if record.kinesis is not None:
        return (f"kinesis stream={record.kinesis.stream} partition_key={record.kinesis.partition_key}: "
                f"{_text(record.kinesis.value)}")
    return str(record.value)
