"""The example functions driven end to end by the real StateFun runtime, through the shipped module.yaml."""

from __future__ import annotations

import uuid

import pytest

from runtime import runner

from .local_runtime import Pool, Runtime, wait_for

pytestmark = [pytest.mark.runtime, pytest.mark.server]


def greet(runtime: Runtime, name: str, times: int) -> list[str]:
    """Send ``name`` to the greeter ``times`` times; the greetings that came back."""
    for _ in range(times):
        runtime.send("example/greeter", name, name, typename="io.statefun.types/string")
    greetings = wait_for(lambda: (r := runtime.records("greetings", name)) and len(r) >= times and r)
    assert {g["egress"] for g in greetings} == {"io.statefun.playground/egress"}
    return [g["value"] for g in greetings]


def test_the_shipped_module_loads_with_only_the_endpoint_hosts_changed(runtime: Runtime, pool: Pool) -> None:
    shipped = runner.SHIPPED_MODULE.read_text().splitlines()
    loaded = runtime.module_path.read_text().splitlines()[:len(shipped)]
    changed = [(a, b) for a, b in zip(shipped, loaded, strict=True) if a != b]
    assert changed and all("urlPathTemplate:" in a for a, _ in changed)
    assert all(b.replace(pool.url, "http://statefun-functions.statefun.svc.cluster.local:8000") == a
               for a, b in changed)
    # The runtime bound every component (Kafka ingress and egress too) and reads an endpoint's transport
    # when the first message goes to it.
    name = f"Grace-{uuid.uuid4().hex[:8]}"
    assert greet(runtime, name, 1) == [f"Hello {name}! Nice to meet you."]


def test_the_runtime_rejects_a_module_whose_transport_it_cannot_read(start_runtime, pool: Pool) -> None:
    """The control for the test above: the runtime itself, not a schema, checks the transport's values."""
    shipped = runner.SHIPPED_MODULE.read_text()
    module = shipped.replace("\n    call: 2m\n", "\n    call: 2 parsecs\n", 1)
    assert module != shipped
    broken = start_runtime(runner.rewrite_hosts(module, pool.url), {"restart-strategy": "none"})
    broken.wait_running()
    broken.send("example/greeter", "Ada", "Ada", typename="io.statefun.types/string")
    assert broken.wait_exit(timeout=60) == 1
    assert "the job failed for good" in broken.log() and "parsecs" in broken.log()


def test_greeter_greets_repeated_names(runtime: Runtime) -> None:
    name = f"Ada-{uuid.uuid4().hex[:8]}"
    assert greet(runtime, name, 3) == [
        f"Hello {name}! Nice to meet you.", f"Hello again, {name}!", f"Hello {name}, this is visit number 3."]


def checkout_until(runtime: Runtime, user: str, quantity: int) -> list[dict[str, object]]:
    """Check out until the receipts hold ``quantity`` in all: an item lands in the basket only once the
    stock's answer came back, which the runtime delivers asynchronously."""
    def enough() -> list[dict[str, object]] | None:
        receipts = runtime.values("receipts", user)
        items = [r for r in receipts if r["items"]]
        if sum(q for r in items for q in r["items"].values()) >= quantity:
            return items
        runtime.send("com.example/user-shopping-cart", user, {"user_id": user}, "com.example/Checkout")
        return None
    return wait_for(enough)  # type: ignore[no-any-return]


def test_cart_reserves_stock_and_sends_a_receipt_at_checkout(runtime: Runtime) -> None:
    user, item = f"user-{uuid.uuid4().hex[:8]}", f"socks-{uuid.uuid4().hex[:8]}"
    runtime.send("com.example/stock", item, {"item_id": item, "quantity": 10}, "com.example/RestockItem")
    runtime.send("com.example/user-shopping-cart", user, {"user_id": user, "item_id": item, "quantity": 3},
                 "com.example/AddToCart")
    assert checkout_until(runtime, user, 3) == [{"user_id": user, "items": {item: 3}}]
    # 7 are left: 8 are refused, then 7 are reserved.
    for quantity in (8, 7):
        runtime.send("com.example/user-shopping-cart", user,
                     {"user_id": user, "item_id": item, "quantity": quantity}, "com.example/AddToCart")
    assert checkout_until(runtime, user, 10)[1:] == [{"user_id": user, "items": {item: 7}}]
