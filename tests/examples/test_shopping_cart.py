"""The shopping cart example, tested with statefun_workers.testing as a user would test their functions."""

from examples.shopping_cart import (
    CART,
    EGRESS,
    STOCK,
    AddToCart,
    Basket,
    Checkout,
    ClearCart,
    ItemAvailability,
    RequestItem,
    RestockItem,
    functions,
)
from statefun_workers.testing import Address, Flow, call


def test_checkout_sends_one_receipt_with_what_was_in_stock() -> None:
    flow = Flow(functions, egresses=[EGRESS])
    flow.send(STOCK, "socks", {"item_id": "socks", "quantity": 2}, RestockItem)
    for item in ("socks", "socks", "hats"):  # no hats in stock
        flow.send(CART, "alice", {"user_id": "alice", "item_id": item, "quantity": 1}, AddToCart)
    flow.send(CART, "alice", {"user_id": "alice"}, Checkout)

    [receipt] = flow.egress(EGRESS, topic="receipts")
    assert receipt.kafka.key == "alice"
    assert receipt.kafka.as_type(Basket) == {"user_id": "alice", "items": {"socks": 2}}
    assert flow.state(STOCK, "socks") == {"stock": 0}
    assert flow.state(CART, "alice") == {}  # the basket is emptied at checkout


def test_clearing_the_cart_gives_the_items_back_to_stock() -> None:
    flow = Flow(functions, egresses=[EGRESS])
    flow.send(STOCK, "socks", {"item_id": "socks", "quantity": 5}, RestockItem)
    flow.send(CART, "bob", {"user_id": "bob", "item_id": "socks", "quantity": 3}, AddToCart)
    assert flow.state(STOCK, "socks") == {"stock": 2}
    assert flow.state(CART, "bob") == {"basket": {"socks": 3}}

    flow.send(CART, "bob", {"user_id": "bob"}, ClearCart)
    assert flow.state(STOCK, "socks") == {"stock": 5}
    assert flow.state(CART, "bob") == {}
    assert flow.egress() == []


def test_the_stock_answers_whoever_asked() -> None:
    effects = call(functions, STOCK, "socks", {"quantity": 2}, type=RequestItem, state={"stock": 1},
                   caller=(CART, "carol"))
    [answer] = effects.messages
    assert answer.to == Address(CART, "carol")
    assert answer.as_type(ItemAvailability) == {"status": "OUT_OF_STOCK", "quantity": 2}
    assert effects.written == {} and effects.state == {"stock": 1}


def test_an_item_in_stock_is_taken_from_it() -> None:
    effects = call(functions, STOCK, "socks", {"quantity": 2}, type=RequestItem, state={"stock": 3},
                   caller=(CART, "carol"))
    assert effects.written == {"stock": 1}
    assert effects.messages[0].as_type(ItemAvailability) == {"status": "IN_STOCK", "quantity": 2}
