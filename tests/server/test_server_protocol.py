"""The real server answers exactly what the official SDK answers, for the same functions and requests."""

from __future__ import annotations

import pytest
import statefun

from statefun_workers._proto import request_reply_pb2 as pb2
from tests.server_process import Server
from tests.support import REPO

from .wire import (
    greeter_request,
    json_arg,
    load_with_official_sdk,
    parse,
    parse_json_as_values,
    string_arg,
    to_function,
    typed,
)

pytestmark = pytest.mark.server

OCTET = "application/octet-stream"


def _int(value: int):  # noqa: ANN202 - a TypedValue
    return typed("io.statefun.types/int", statefun.IntType.serializer().serialize(value))


def _basket(value: dict[str, int]):  # noqa: ANN202 - a TypedValue
    return json_arg("com.example/Basket", value)


CART = "com.example/user-shopping-cart"
STOCK = "com.example/stock"

REQUESTS = {
    "greeter, state not registered yet": to_function("example/greeter", "Alice", [string_arg("Alice")]),
    "greeter, first visit": greeter_request("Alice", seen=None),
    "greeter, batch of three": greeter_request("Bob", seen=5, messages=3),
    "cart, add to cart": to_function(CART, "u1",
                                     [json_arg("com.example/AddToCart",
                                               {"user_id": "u1", "item_id": "apple", "quantity": 2})],
                                     state={"basket": None}),
    "cart, item in stock": to_function(CART, "u1", [json_arg("com.example/ItemAvailability",
                                                             {"status": "IN_STOCK", "quantity": 2})],
                                       state={"basket": _basket({"pear": 1})}, caller=(STOCK, "apple")),
    "cart, item out of stock": to_function(CART, "u1", [json_arg("com.example/ItemAvailability",
                                                                 {"status": "OUT_OF_STOCK", "quantity": 2})],
                                           state={"basket": _basket({"pear": 1})}, caller=(STOCK, "apple")),
    "cart, clear": to_function(CART, "u1", [json_arg("com.example/ClearCart", {"user_id": "u1"})],
                               state={"basket": _basket({"pear": 1, "apple": 3})}),
    "cart, checkout": to_function(CART, "u1", [json_arg("com.example/Checkout", {"user_id": "u1"})],
                                  state={"basket": _basket({"pear": 1})}),
    "stock, restock": to_function(STOCK, "apple", [json_arg("com.example/RestockItem",
                                                            {"item_id": "apple", "quantity": 5})],
                                  state={"stock": None}),
    "stock, request in stock": to_function(STOCK, "apple",
                                           [json_arg("com.example/RequestItem", {"quantity": 2})],
                                           state={"stock": _int(3)}, caller=(CART, "u1")),
    "stock, request out of stock": to_function(STOCK, "apple",
                                               [json_arg("com.example/RequestItem", {"quantity": 2})],
                                               state={"stock": _int(1)}, caller=(CART, "u1")),
    "stock, batch from two carts": to_function(STOCK, "apple",
                                               [json_arg("com.example/RequestItem", {"quantity": 2})] * 2,
                                               state={"stock": _int(3)}, caller=(CART, "u2")),
}


class Official:
    """The examples' own code run by the official SDK's handler (one handler per example module)."""

    def __init__(self) -> None:
        self._handlers = {}
        for module in ("greeter", "shopping_cart"):
            functions = load_with_official_sdk(REPO / "examples" / f"{module}.py")
            for typename in functions._functions:
                self._handlers[typename] = statefun.RequestReplyHandler(functions)

    def handle_sync(self, body: bytes) -> bytes:
        target = pb2.ToFunction.FromString(body).invocation.target
        return self._handlers[f"{target.namespace}/{target.type}"].handle_sync(body)


@pytest.fixture(scope="module")
def official() -> Official:
    return Official()


@pytest.mark.parametrize("name", list(REQUESTS))
def test_answers_equal_the_official_sdk(server: Server, official: Official, name: str) -> None:
    body = REQUESTS[name]
    status, headers, answer = server.post(body)
    assert status == 200, answer
    assert headers["Content-Type"] == OCTET
    ours = parse(answer)
    # Never two empty answers compared by accident: only the no-op case answers nothing.
    assert (ours.WhichOneof("response") is None) == (name == "cart, item out of stock")
    assert parse_json_as_values(answer) == parse_json_as_values(official.handle_sync(body))


def test_path_form_and_any_path_dispatch_on_the_body(server: Server, official: Official) -> None:
    body = greeter_request("Carol", seen=1)
    expected = parse(official.handle_sync(body))
    for path in ("/statefun/greeter", "/statefun/some-other-name", "/custom/path/greeter"):
        status, headers, answer = server.post(body, path=path)
        assert (status, headers["Content-Type"]) == (200, OCTET), (path, answer)
        assert parse(answer) == expected


def test_keep_alive_connection_is_reused(server: Server) -> None:
    conn = server.connect()
    try:
        sockets = set()
        for seen in range(5):
            status, _, answer = server.post(greeter_request("Dan", seen=seen), conn=conn)
            assert status == 200
            assert parse(answer).HasField("invocation_result")
            sockets.add(id(conn.sock))
        assert len(sockets) == 1 and conn.sock is not None
    finally:
        conn.close()


def test_chunked_body_is_served(server: Server) -> None:
    body = greeter_request("Eve", seen=2)
    conn = server.connect()
    try:
        conn.request("POST", "/statefun", body=iter([body[:5], body[5:]]),
                     headers={"Content-Type": OCTET}, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 200
        assert parse(resp.read()).HasField("invocation_result")
    finally:
        conn.close()


def test_health_ready_and_metrics(server: Server) -> None:
    assert server.get("/healthz")[0] == 200
    assert server.get("/readyz")[0] == 200
    for probe in ("/healthz", "/readyz"):
        status, _, body = server.get(probe, method="HEAD")
        assert (status, body) == (200, b"")
    server.post(greeter_request("Fay", seen=1))
    status, headers, body = server.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b'statefun_batches_total{' in body and b'typename="example/greeter"' in body


def test_logs_are_one_json_object_per_line(server: Server) -> None:
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines
    records = server.log_records()
    assert len(records) == len(lines), [line for line in lines if not line.startswith("{")]
    assert {"ts", "level", "logger", "pid", "msg"} <= set(records[0])
