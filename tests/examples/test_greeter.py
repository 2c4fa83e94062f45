"""The greeter example, tested with statefun_workers.testing as a user would test their functions."""

from examples.greeter import EGRESS, functions
from statefun_workers.testing import Flow, call


def test_greets_each_visit_of_a_name() -> None:
    flow = Flow(functions, egresses={EGRESS: "kafka"})
    for name in ("Ada", "Ada", "Bob", "Ada"):
        flow.send("example/greeter", name, name)
    assert [(r.kafka.key, r.kafka.value.decode()) for r in flow.egress(topic="greetings")] == [
        ("Ada", "Hello Ada! Nice to meet you."),
        ("Ada", "Hello again, Ada!"),
        ("Bob", "Hello Bob! Nice to meet you."),
        ("Ada", "Hello Ada, this is visit number 3."),
    ]
    assert flow.state("example/greeter", "Ada") == {"seen": 3}


def test_a_batch_counts_every_message_in_it() -> None:
    effects = call(functions, "example/greeter", "Cy", "Cy", "Cy", state={"seen": 9})
    assert effects.written == {"seen": 11}
    assert [r.kafka.value for r in effects.egress] == [b"Hello Cy, this is visit number 10.",
                                                       b"Hello Cy, this is visit number 11."]
