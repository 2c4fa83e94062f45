"""An example of your own functions in your own image (see the Dockerfile next to this file).

``acme/orders`` counts the orders of each customer (the address id) for 30 days after the last one, and
tells ``acme/loyalty`` about every tenth.
"""

from datetime import timedelta

from statefun_workers import Context, IntType, Message, StatefulFunctions, ValueSpec, make_json_type, message_builder

ORDER = make_json_type("acme/Order")

functions = StatefulFunctions()


@functions.bind(typename="acme/orders",
                specs=[ValueSpec(name="count", type=IntType, expire_after_write=timedelta(days=30))])
def orders(context: Context, message: Message) -> None:
    order = message.as_type(ORDER)
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    if count % 10 == 0:
        context.send(message_builder(target_typename="acme/loyalty", target_id=context.address.id,
                                     value={"orders": count, "last": order}, value_type=ORDER))


