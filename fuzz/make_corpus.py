"""Write the seed corpus (fuzz/corpus/): requests for the example functions and the wire forms around them.

Usage: python -m fuzz.make_corpus [directory]   (default: fuzz/corpus; files are named by what they show)

The seeds give the fuzzer a start at every place worth mutating: each example function and message type, state
present, absent and unset, callers, unknown fields of every wire type at every level, sub-messages split in
two, groups nested just under and just over the bound, and a few classic refusals. Deterministic: the same
files every time, so the corpus in git is this script's output.
"""

from __future__ import annotations

import sys
from pathlib import Path

from statefun_workers import _wire
from statefun_workers._proto.request_reply_pb2 import ToFunction, TypedValue
from statefun_workers._read import MAX_DEPTH
from tests.server.wire import INT, json_arg, string_arg, typed
from tests.server.wire import to_function as request

HERE = Path(__file__).resolve().parent


def _int(n: int) -> TypedValue:
    return typed("io.statefun.types/int", INT.serialize(n))


def groups(depth: int, number: int = 5) -> bytes:
    """``depth`` groups nested in each other, empty inside."""
    return _wire.varint(number << 3 | 3) * depth + _wire.varint(number << 3 | 4) * depth


UNKNOWN = {  # one unknown field of each wire type (numbers no message here uses)
    "varint": b"\x20\x96\x01", "fixed64": b"\x29" + bytes(8), "length": b"\x3a\x02hi", "group": b"\x43\x48\x01\x44",
    "fixed32": b"\x35" + bytes(4), "big-number": b"\xf8\xff\xff\xff\x0f\x01",
}

CART, STOCK = "com.example/user-shopping-cart", "com.example/stock"
BASKET = "com.example/Basket"


def example_requests() -> dict[str, bytes]:
    stock_caller = (STOCK, "socks")
    cart_caller = (CART, "ann")
    return {
        "greeter-new": request("example/greeter", "Ann", [string_arg("Ann")], state={"seen": None}),
        "greeter-seen": request("example/greeter", "Bo", [string_arg("Bo")] * 3, state={"seen": _int(41)}),
        "greeter-missing-state": request("example/greeter", "Cy", [string_arg("Cy")], state={}),
        "greeter-wrong-state-type": request("example/greeter", "Di", [string_arg("Di")],
                                            state={"seen": string_arg("x")}),
        "cart-add": request(CART, "ann", [json_arg("com.example/AddToCart",
                                                   {"user_id": "ann", "item_id": "socks", "quantity": 2})],
                            state={"basket": None}),
        "cart-availability": request(CART, "ann", [json_arg("com.example/ItemAvailability",
                                                            {"status": "IN_STOCK", "quantity": 2})],
                                     state={"basket": json_arg(BASKET, {"hat": 1})}, caller=stock_caller),
        "cart-clear": request(CART, "ann", [json_arg("com.example/ClearCart", {"user_id": "ann"})],
                              state={"basket": json_arg(BASKET, {"hat": 1, "socks": 3})}),
        "cart-checkout": request(CART, "ann", [json_arg("com.example/Checkout", {"user_id": "ann"})],
                                 state={"basket": json_arg(BASKET, {"hat": 1})}),
        "stock-restock": request(STOCK, "socks", [json_arg("com.example/RestockItem",
                                                           {"item_id": "socks", "quantity": 5})],
                                 state={"stock": _int(1)}),
        "stock-request": request(STOCK, "socks", [json_arg("com.example/RequestItem", {"quantity": 2})],
                                 state={"stock": _int(3)}, caller=cart_caller),
        "unknown-function": request("nobody/home", "x", [string_arg("x")], state={}),
        "empty-batch": request("example/greeter", "Ed", [], state={"seen": None}),
    }


def _frame(tag: bytes, payload: bytes) -> bytes:
    return _wire.field_bytes(tag, payload)


# Where a field can go, as a function from the field's bytes to a whole request around it (with its depth).
POSITIONS = {
    "top": (0, lambda f: f),
    "batch": (1, lambda f: _frame(b"\xa2\x06", f)),
    "target": (2, lambda f: _frame(b"\xa2\x06", _frame(b"\x0a", f))),
    "state": (2, lambda f: _frame(b"\xa2\x06", _frame(b"\x12", f))),
    "state-value": (3, lambda f: _frame(b"\xa2\x06", _frame(b"\x12", _frame(b"\x12", f)))),
    "invocation": (2, lambda f: _frame(b"\xa2\x06", _frame(b"\x1a", f))),
    "caller": (3, lambda f: _frame(b"\xa2\x06", _frame(b"\x1a", _frame(b"\x0a", f)))),
    "argument": (3, lambda f: _frame(b"\xa2\x06", _frame(b"\x1a", _frame(b"\x12", f)))),
}


def wire_forms() -> dict[str, bytes]:
    greeter = request("example/greeter", "Ann", [string_arg("Ann")], state={"seen": _int(1)}, caller=("a/b", "c"))
    target, rest = ToFunction.FromString(greeter), ToFunction.FromString(greeter)
    target.invocation.ClearField("invocations")
    target.invocation.ClearField("state")
    rest.invocation.ClearField("target")
    seeds = {
        "split-batch": target.SerializeToString() + rest.SerializeToString(),  # a parser merges the two
        "empty": b"",
        "truncated-varint": greeter[:1] + b"\xff",
        "wire-type-6": b"\x0e\x00",
        "end-group-at-top": b"\x2c",
        "mismatched-group-end": b"\x2b\x34",
        "not-utf8-id": _frame(b"\xa2\x06", _frame(b"\x0a", b"\x1a\x01\xff")),
        "varint-11-bytes": b"\x08" + b"\x80" * 10 + b"\x01",
        "key-6-bytes": b"\x88\x80\x80\x80\x80\x00\x01",  # keys and lengths take five bytes at most
        "length-6-bytes": b"\x3a\x82\x80\x80\x80\x80\x00hi",
        "field-number-0-in-group": b"\x2b\x00\x01\x03\x04\x2c",  # upb accepts it there, and only there
        "batch-cut-inside-a-field": b"\xa2\x06\x03p\x01 \xa2\x06\x03 p\x01",  # each part must parse alone
    }
    for name, field in UNKNOWN.items():
        for where, (_, wrap) in POSITIONS.items():
            seeds[f"unknown-{name}-in-{where}"] = wrap(field)
    for where, (depth, wrap) in POSITIONS.items():
        seeds[f"groups-deepest-in-{where}"] = wrap(groups(MAX_DEPTH - depth))
        seeds[f"groups-too-deep-in-{where}"] = wrap(groups(MAX_DEPTH - depth + 1))
    return seeds


def main(argv: list[str]) -> None:
    folder = Path(argv[1]) if len(argv) > 1 else HERE / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = {**example_requests(), **wire_forms()}
    for name, data in seeds.items():
        (folder / name).write_bytes(data)
    print(f"{len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes, in {folder}")


if __name__ == "__main__":
    main(sys.argv)
