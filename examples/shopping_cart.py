"""A shopping cart and a stock keeper that talk to each other, after the StateFun playground's Java example.

* ``com.example/user-shopping-cart`` (id: the user) keeps the basket as JSON state. ``AddToCart`` asks the
  stock keeper of that item for the quantity; the answer (``ItemAvailability``) comes back as a message, and
  only then is the item added. ``ClearCart`` gives everything back to stock; ``Checkout`` sends a receipt
  through a Kafka egress and empties the basket.
* ``com.example/stock`` (id: the item) keeps the quantity in stock as an int. ``RestockItem`` adds to it;
  ``RequestItem`` takes from it if there is enough, and always answers the asking cart, found through the
  message's caller address: the stock keeper never needs to know which function asked.
"""

from statefun_workers import (
    Context,
    IntType,
    Message,
    StatefulFunctions,
    ValueSpec,
    kafka_egress_message,
    make_json_type,
    message_builder,
)

CART = "com.example/user-shopping-cart"
STOCK = "com.example/stock"
EGRESS = "io.statefun.playground/egress"

# Messages are JSON objects, each under its own typename.
AddToCart = make_json_type("com.example/AddToCart")  # {"user_id", "item_id", "quantity"}
ClearCart = make_json_type("com.example/ClearCart")  # {"user_id"}
Checkout = make_json_type("com.example/Checkout")  # {"user_id"}
RestockItem = make_json_type("com.example/RestockItem")  # {"item_id", "quantity"}
RequestItem = make_json_type("com.example/RequestItem")  # {"quantity"}
# {"status": "IN_STOCK" or "OUT_OF_STOCK", "quantity"}
ItemAvailability = make_json_type("com.example/ItemAvailability")
Basket = make_json_type("com.example/Basket")  # {item_id: quantity}

functions = StatefulFunctions()


@functions.bind(typename=CART, specs=[ValueSpec(name="basket", type=Basket)])
def user_shopping_cart(context: Context, message: Message) -> None:
    if message.is_type(AddToCart):
        add = message.as_type(AddToCart)
        context.send(message_builder(target_typename=STOCK, target_id=add["item_id"],
                                     value={"quantity": add["quantity"]}, value_type=RequestItem))
    elif message.is_type(ItemAvailability):
        availability = message.as_type(ItemAvailability)
        if availability["status"] == "IN_STOCK":
            item_id = context.caller.id  # the stock keeper that answered is the item
            basket = context.storage.basket or {}
            basket[item_id] = basket.get(item_id, 0) + availability["quantity"]
            context.storage.basket = basket
    elif message.is_type(ClearCart):
        for item_id, quantity in (context.storage.basket or {}).items():
            context.send(message_builder(target_typename=STOCK, target_id=item_id,
                                         value={"item_id": item_id, "quantity": quantity},
                                         value_type=RestockItem))
        del context.storage.basket
    elif message.is_type(Checkout):
        basket = context.storage.basket or {}
        receipt = {"user_id": context.address.id, "items": basket}
        context.send_egress(kafka_egress_message(typename=EGRESS, topic="receipts", key=context.address.id,
                                                 value=receipt, value_type=Basket))
        del context.storage.basket
    else:
        raise ValueError(f"{CART} got a message of unexpected type {message.value_typename()}")


@functions.bind(typename=STOCK, specs=[ValueSpec(name="stock", type=IntType)])
def stock(context: Context, message: Message) -> None:
    if message.is_type(RestockItem):
        context.storage.stock = (context.storage.stock or 0) + message.as_type(RestockItem)["quantity"]
    elif message.is_type(RequestItem):
        wanted = message.as_type(RequestItem)["quantity"]
        available = context.storage.stock or 0
        if available >= wanted:
            context.storage.stock = available - wanted
            status = "IN_STOCK"
        else:
            status = "OUT_OF_STOCK"
        caller = context.caller
        context.send(message_builder(target_typename=caller.typename, target_id=caller.id,
                                     value={"status": status, "quantity": wanted},
                                     value_type=ItemAvailability))
    else:
        raise ValueError(f"{STOCK} got a message of unexpected type {message.value_typename()}")
