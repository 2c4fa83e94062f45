"""Building ToFunction requests and reading FromFunction answers for the server tests.

Requests are built with this project's generated protos; answers are parsed into the official SDK's
``FromFunction`` class, so that both implementations' answers are compared as one message type.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import statefun
from statefun import request_reply_pb2 as official_pb2

from statefun_workers._proto import request_reply_pb2 as pb2

from ..core.harness import with_json_canonical

STRING = statefun.StringType.serializer()
INT = statefun.IntType.serializer()


def typed(typename: str, value: bytes | None) -> pb2.TypedValue:
    if value is None:
        return pb2.TypedValue(typename=typename, has_value=False)
    return pb2.TypedValue(typename=typename, has_value=True, value=value)


def string_arg(text: str) -> pb2.TypedValue:
    return typed("io.statefun.types/string", STRING.serialize(text))


def json_arg(typename: str, value: Any) -> pb2.TypedValue:
    return typed(typename, statefun.make_json_type(typename).serializer().serialize(value))


def to_function(typename: str, id: str, args: list[pb2.TypedValue], *,
                state: dict[str, pb2.TypedValue | None] | None = None,
                caller: tuple[str, str] | None = None) -> bytes:
    """A serialized ToFunction for ``typename``/``id``; ``state``: name -> value (None: registered, unset)."""
    namespace, name = typename.rsplit("/", 1)
    request = pb2.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = namespace, name, id
    for state_name, value in (state or {}).items():
        persisted = batch.state.add(state_name=state_name)
        if value is not None:
            persisted.state_value.CopyFrom(value)
    for arg in args:
        invocation = batch.invocations.add(argument=arg)
        if caller is not None:
            ns, _, rest = caller[0].rpartition("/")
            invocation.caller.namespace, invocation.caller.type, invocation.caller.id = ns, rest, caller[1]
    return request.SerializeToString()


def greeter_request(name: str = "Alice", seen: int | None = None, messages: int = 1) -> bytes:
    state = {"seen": None if seen is None else typed("io.statefun.types/int", INT.serialize(seen))}
    return to_function("example/greeter", name, [string_arg(name)] * messages, state=state)


EXAMPLE_JSON_TYPES = tuple(f"com.example/{name}" for name in (
    "AddToCart", "ClearCart", "Checkout", "RestockItem", "RequestItem", "ItemAvailability", "Basket"))
"""The JSON types of examples/shopping_cart.py: their values compare as values, not bytes (docs/json.md)."""


def parse_json_as_values(body: bytes) -> official_pb2.FromFunction:
    """``parse``, with the examples' JSON values spelled one way: those of their JSON types, and those of their
    Kafka records (the cart's receipt is JSON; the greeter's text is not JSON, and stays bytes)."""
    return parse(with_json_canonical(body, [True] * 64, EXAMPLE_JSON_TYPES))


def parse(body: bytes) -> official_pb2.FromFunction:
    """Parse an answer into the official class, with the order-free parts (state, missing specs) sorted."""
    answer = official_pb2.FromFunction.FromString(body)
    if answer.HasField("invocation_result"):
        mutations = sorted(answer.invocation_result.state_mutations, key=lambda m: m.state_name)
        del answer.invocation_result.state_mutations[:]
        answer.invocation_result.state_mutations.extend(mutations)
    if answer.HasField("incomplete_invocation_context"):
        missing = sorted(answer.incomplete_invocation_context.missing_values, key=lambda m: m.state_name)
        del answer.incomplete_invocation_context.missing_values[:]
        answer.incomplete_invocation_context.missing_values.extend(missing)
    return answer


def load_with_official_sdk(path: Path) -> statefun.StatefulFunctions:
    """Import a module written against ``statefun_workers`` with the official SDK in its place.

    The examples use only the names both packages share, so this runs the very same function code on the
    official SDK: the oracle for the server's answers.
    """
    spec = importlib.util.spec_from_file_location(f"_official_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    ours = sys.modules["statefun_workers"]
    sys.modules["statefun_workers"] = statefun
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["statefun_workers"] = ours
    functions: statefun.StatefulFunctions = module.functions
    return functions
