"""``example/greeter``: greets each person by name and counts how often it has seen them.

The runtime routes a message (a string: the person's name) to the greeter whose id is that name. The count
lives in the function's state, so it survives restarts and moves with the address; the greeting leaves
through a Kafka egress, the way the StateFun playground's greeter answers.
"""

from statefun_workers import Context, IntType, Message, StatefulFunctions, ValueSpec, kafka_egress_message

EGRESS = "io.statefun.playground/egress"
"""The egress typename; declare it in the runtime's module.yaml (kind ``io.statefun.kafka.v1/egress``)."""

functions = StatefulFunctions()


@functions.bind(typename="example/greeter", specs=[ValueSpec(name="seen", type=IntType)])
def greeter(context: Context, message: Message) -> None:
    name = message.as_string()
    seen = (context.storage.seen or 0) + 1
    context.storage.seen = seen
    context.send_egress(kafka_egress_message(typename=EGRESS, topic="greetings", key=name,
                                             value=greeting(name, seen)))


def greeting(name: str, seen: int) -> str:
    if seen == 1:
        return f"Hello {name}! Nice to meet you."
    if seen == 2:
        return f"Hello again, {name}!"
    return f"Hello {name}, this is visit number {seen}."
