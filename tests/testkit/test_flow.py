"""statefun_workers.testing.Flow: routing, virtual time, TTLs, and what the runtime would refuse."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from statefun_workers import (
    Context,
    FunctionError,
    IntType,
    Message,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    kafka_egress_message,
    make_json_type,
    message_builder,
)
from statefun_workers.testing import Address, Flow, RuntimeWouldFail

Command = make_json_type("test/Command")
EGRESS = "test/out"
functions = StatefulFunctions()


def command(target: str, id: str, **fields: object) -> Message:
    return message_builder(target, id, value=fields, value_type=Command)


@functions.bind("test/node", specs=[ValueSpec("total", IntType)])
def node(context: Context, message: Message) -> None:
    """Does what each command says: add, send on, delay, cancel, emit, or misbehave."""
    c = message.as_type(Command)
    op = c["op"]
    if op == "add":
        context.storage.total = (context.storage.total or 0) + c["n"]
        caller = context.caller
        context.send_egress(kafka_egress_message(EGRESS, "adds", f"{c['n']} from {caller}", key=context.address.id))
    elif op == "send":
        context.send(command(c.get("to_type", "test/node"), c["to"], op="add", n=c["n"]))
    elif op == "delay":
        context.send_after(timedelta(milliseconds=c["ms"]), command("test/node", c["to"], op="add", n=c["n"]),
                           c.get("token", ""))
    elif op == "cancel":
        context.cancel_delayed_message(c["token"])
    elif op == "egress":
        context.send_egress(egress_message_builder(c["egress"], "x", StringType))
    elif op == "ping":  # forever
        context.send(command("test/node", context.address.id, op="ping"))


@functions.bind("test/ttl", specs=[
    ValueSpec("written", StringType, expire_after_write=timedelta(seconds=10)),
    ValueSpec("called", StringType, expire_after_call=timedelta(seconds=10))])
def ttl(context: Context, message: Message) -> None:
    if message.as_string() == "set":
        context.storage.written = context.storage.called = "v"


@functions.bind("test/batch", specs=[ValueSpec("seen", StringType)])
def batch(context: Context, message: Message) -> None:
    """Appends each message to what the batch has seen so far: shared storage across a batch."""
    context.storage.seen = (context.storage.seen or "") + message.as_string()


def flow() -> Flow:
    return Flow(functions, egresses={EGRESS: "kafka", "test/any": "any"})


def send(f: Flow, id: str, **fields: object) -> None:
    f.send("test/node", id, fields, Command)


def test_messages_are_routed_and_the_caller_is_the_sender() -> None:
    f = flow()
    send(f, "a", op="send", to="b", n=3)
    assert f.state("test/node", "b") == {"total": 3}
    assert f.state("test/node", "a") == {}
    [record] = f.egress(EGRESS)
    assert record.kafka.value == b"3 from SdkAddress(namespace='test', name='node', id='a', typename='test/node')"


def test_delayed_messages_wait_for_the_virtual_clock() -> None:
    f = flow()
    send(f, "a", op="delay", to="b", n=1, ms=1500)
    send(f, "a", op="delay", to="b", n=10, ms=500)
    send(f, "a", op="delay", to="c", n=100, ms=0)  # due now: delivered while the flow settles
    assert f.state("test/node", "c") == {"total": 100}
    assert [(due, sender, m.to) for due, sender, m in f.pending()] == [
        (timedelta(milliseconds=500), Address("test/node", "a"), Address("test/node", "b")),
        (timedelta(milliseconds=1500), Address("test/node", "a"), Address("test/node", "b"))]
    f.advance(timedelta(milliseconds=499))
    assert f.state("test/node", "b") == {}
    f.advance(timedelta(milliseconds=1))
    assert f.state("test/node", "b") == {"total": 10}
    f.advance(timedelta(seconds=5))
    assert f.state("test/node", "b") == {"total": 11} and f.now == timedelta(milliseconds=5500)
    assert f.pending() == []
    assert "[500 ms] test/node/b <- test/node/a: test/Command" in f.trace


def test_cancellation_tokens_belong_to_the_sender() -> None:
    f = flow()
    send(f, "a", op="delay", to="b", n=1, ms=1000, token="t")
    send(f, "z", op="delay", to="b", n=2, ms=1000, token="t")  # another sender: its own token
    send(f, "a", op="cancel", token="t")
    send(f, "a", op="cancel", token="unknown")  # nothing pending: the runtime ignores it
    f.advance(timedelta(seconds=1))
    assert f.state("test/node", "b") == {"total": 2}
    send(f, "a", op="delay", to="b", n=4, ms=0, token="t")  # cancelled, then delivered: the token is free again
    send(f, "a", op="delay", to="b", n=8, ms=0, token="t")
    assert f.state("test/node", "b") == {"total": 14}
    assert "cancel 'unknown': nothing pending (the runtime ignores it)" in f.trace


def test_a_second_pending_message_with_one_token_would_fail_the_job() -> None:
    f = flow()
    send(f, "a", op="delay", to="b", n=1, ms=1000, token="t")
    with pytest.raises(RuntimeWouldFail, match="token 't' while its message with that token is still pending"):
        send(f, "a", op="delay", to="b", n=1, ms=1000, token="t")


def test_what_the_runtime_cannot_route_would_fail_the_job() -> None:
    f = flow()
    with pytest.raises(RuntimeWouldFail, match="no function is bound to test/nobody .* fails the job"):
        f.send("test/nobody", "a", "x")
    with pytest.raises(RuntimeWouldFail, match="test/node/a sent a message to test/nobody/b"):
        send(f, "a", op="send", to_type="test/nobody", to="b", n=1)
    with pytest.raises(RuntimeWouldFail, match="egress test/unknown, which the module does not declare"):
        send(f, "a", op="egress", egress="test/unknown")
    with pytest.raises(RuntimeWouldFail, match="to the kafka egress test/out, which takes only"):
        send(f, "a", op="egress", egress=EGRESS)
    send(f, "a", op="egress", egress="test/any")
    assert f.egress("test/any")[0].value.value == "x"


def test_a_message_loop_is_stopped() -> None:
    f = flow()
    f.max_batches = 50
    with pytest.raises(RuntimeWouldFail, match="did not settle within 50 batches"):
        send(f, "a", op="ping")


def test_state_expires_after_write_or_after_call() -> None:
    f = flow()
    f.send("test/ttl", "a", "set")
    f.advance(timedelta(seconds=6))
    f.send("test/ttl", "a", "get")  # a call: restarts the clock of "called" only
    f.advance(timedelta(seconds=4))
    assert f.state("test/ttl", "a") == {"called": "v"}  # "written" expired 10 s after its write
    f.advance(timedelta(milliseconds=5999))
    assert f.state("test/ttl", "a") == {"called": "v"}
    f.advance(timedelta(milliseconds=1))
    assert f.state("test/ttl", "a") == {}
    f.send("test/ttl", "a", "get")
    assert "test/ttl/a: state written expired" in f.trace


def test_messages_queued_for_one_address_run_as_one_batch() -> None:
    f = flow()
    for text in "abc":
        f.send("test/batch", "x", text, run=False)
    f.send("test/batch", "y", "z", run=False)
    f.run()
    assert f.batches == 2
    assert f.state("test/batch", "x") == {"seen": "abc"}


def test_a_state_type_change_fails_as_in_the_runtime() -> None:
    f = flow()
    f.send("test/batch", "x", "a")
    changed = StatefulFunctions()

    @changed.bind("test/batch", specs=[ValueSpec("seen", IntType)])
    def counts(context: Context, message: Message) -> None:
        if message.as_string() == "read":
            assert context.storage.seen is not None
        context.storage.seen = 1

    f.deploy(changed)
    with pytest.raises(FunctionError) as read:
        f.send("test/batch", "x", "read")
    assert "Type mismatch" in str(read.value.__cause__)
    with pytest.raises(RuntimeWouldFail, match="wrote state 'seen' as io.statefun.types/int, but the runtime "
                                               "registered it as io.statefun.types/string"):
        f.send("test/batch", "x", "write")


def test_a_failing_test_shows_the_trace(tmp_path: Path) -> None:
    """The pytest plugin (an entry point of the package) adds each flow's trace to a failed test's report."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        from examples.greeter import EGRESS, functions
        from statefun_workers.testing import Flow

        def test_fails():
            flow = Flow(functions, egresses=[EGRESS])
            flow.send("example/greeter", "Ada", "Ada")
            assert flow.egress() == []

        def test_passes():
            Flow(functions, egresses=[EGRESS]).send("example/greeter", "Bob", "Bob")
    """))
    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    assert "statefun flow trace" in run.stdout
    assert "[0 ms] example/greeter/Ada <- ingress: io.statefun.types/string 'Ada'" in run.stdout
    assert "egress io.statefun.playground/egress: kafka topic=greetings key=Ada: Hello Ada!" in run.stdout
    assert "Bob" not in run.stdout  # the passing test's flow is not shown


def test_mistakes_in_setting_up_a_flow_are_named() -> None:
    with pytest.raises(ValueError, match="at least one StatefulFunctions registry"):
        Flow()
    with pytest.raises(ValueError, match="test/node, test/ttl bound in two registries"):
        Flow(functions, functions)
    with pytest.raises(ValueError, match="kind must be 'kafka', 'kinesis' or 'any'"):
        Flow(functions, egresses={"test/out": "kafak"})
    with pytest.raises(ValueError, match="no function is bound to test/nobody"):
        flow().state("test/nobody", "a")


def test_a_failing_function_fails_the_flow_with_the_trace() -> None:
    f = flow()
    send(f, "a", op="add", n=1)
    with pytest.raises(FunctionError) as failed:
        f.send("test/node", "a", "not a command", StringType)
    assert isinstance(failed.value.__cause__, Exception)
    if sys.version_info >= (3, 11):  # exception notes
        note = "\n".join(failed.value.__notes__)
        assert "retry this batch until its call budget runs out, then fail the job" in note
        assert "[0 ms] test/node/a <- ingress: io.statefun.types/string 'not a command'" in note
