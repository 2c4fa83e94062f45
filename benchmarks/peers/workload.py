"""The benchmark's functions, written once against the official SDK's API.

``build(sdk)`` takes a module, ``statefun`` (the official SDK) or ``statefun_workers`` (this project, which
keeps the same names), and returns a ``StatefulFunctions`` with the workloads' functions bound. Building both
servers from the same source is what makes the comparison fair: every Python server runs the very same
function bodies, so a difference in throughput is the SDK's and the server's, not the user code's.
``server.js`` mirrors these functions for the JavaScript SDK.
"""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType
from typing import Any


def build(sdk: ModuleType) -> Any:
    """Bind ``example/greeter``, ``example/cart`` and ``example/doc`` on a fresh registry of ``sdk``."""
    functions = sdk.StatefulFunctions()
    basket_type = sdk.make_json_type("com.example/Basket")
    command_type = sdk.make_json_type("com.example/Cmd")
    document_type = sdk.make_json_type("com.example/Doc")

    # greeter: the playground's example, the most common shape of a remote function: read and bump a small
    # state, emit one Kafka record, message one other function.
    def greeter(context: Any, message: Any) -> None:
        name = message.as_string()
        seen = (context.storage.seen or 0) + 1
        context.storage.seen = seen
        context.send_egress(sdk.kafka_egress_message(
            typename="io.statefun.playground/egress", topic="greetings", key=name,
            value=f"Hello {name} for the {seen}th time!"))
        context.send(sdk.message_builder(target_typename="example/counter", target_id=name, int_value=seen))

    # cart: a larger JSON state (about 2 KB) with a TTL, decoded and re-encoded on every call: the cost of a
    # JSON codec and of state bytes, rather than of the protocol's fixed overhead.
    def cart(context: Any, message: Any) -> None:
        command = message.as_type(command_type)
        basket = context.storage.basket or {}
        basket[command["item"]] = basket.get(command["item"], 0) + command["qty"]
        context.storage.basket = basket

    # doc: a JSON document (4 KB to 1 MB) read and written on every call, one entry appended and the oldest
    #   dropped past 700: what a JSON codec costs when the state is large.
    def doc(context: Any, message: Any) -> None:
        document = context.storage.doc or {"events": []}
        document["events"].append({"n": message.as_int(), "tag": "event"})
        if len(document["events"]) > 700:
            del document["events"][0]
        context.storage.doc = document

    # NOTE: bind(...)(f) is what the usual @functions.bind(...) decorator does; written as a call because
    #   `sdk` is a module parameter, so a type checker cannot see the decorator's types.
    functions.bind(typename="example/greeter", specs=[sdk.ValueSpec(name="seen", type=sdk.IntType)])(greeter)
    functions.bind(typename="example/cart", specs=[
        sdk.ValueSpec(name="basket", type=basket_type, expire_after_write=timedelta(days=1))])(cart)
    functions.bind(typename="example/doc", specs=[sdk.ValueSpec(name="doc", type=document_type)])(doc)
    return functions
