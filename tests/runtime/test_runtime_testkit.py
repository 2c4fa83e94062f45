"""The test kit held to the real runtime: the same flows, run by statefun_workers.testing.Flow and by the real
StateFun runtime (one JVM) over a real pool, give the same egress records and the same final state.

Both sides serve tests/runtime/testkit_functions.py: the examples and a workload function, each invocation
acknowledged on an egress topic. The runtime is asynchronous; the test sends one message at a time and waits
until the runtime has acknowledged as many invocations as the kit ran for that message (messages sent on,
delayed ones due now included), so both settle the same way, then compares every record and each address's
state, reported by the functions themselves.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from examples.greeter import EGRESS
from examples.shopping_cart import CART, STOCK, AddToCart, Checkout, ClearCart, RestockItem
from runtime import runner
from statefun_workers import StringType, Type
from statefun_workers.testing import Flow
from tests.server_process import Server, poll

from .local_runtime import Runtime, http_endpoint, kafka_egress, require_runner
from .testkit_functions import ACKS, NODE, OUT, TTL, Command, Report, served

pytestmark = [pytest.mark.runtime, pytest.mark.server]

Step = tuple[str, str, Any, Type]
"""One message from the ingress: function typename, id, value, value type; or ``(ADVANCE, "", ms, None)``:
let that much time pass (virtual in the kit, real in the runtime)."""
ADVANCE = "advance"
TOPICS = [(EGRESS, "greetings"), (EGRESS, "receipts"), (OUT, "totals"), (ACKS, "acks"), (ACKS, "state")]


def module(pool_url: str) -> str:
    endpoints = "".join(http_endpoint(f"{namespace}/*", pool_url)
                        for namespace in ("example", "com.example", "testkit-diff"))
    return endpoints + "".join(kafka_egress(egress) for egress in (EGRESS, OUT, ACKS))


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The real runtime, over a pool serving the wrapped functions; it fails for good on any job failure."""
    require_runner()
    directory = tmp_path_factory.mktemp("testkit-diff")
    pool = Server({"STATEFUN_FUNCTIONS": "tests.runtime.testkit_functions:served",
                   "PYTHONPATH": str(runner.REPO)}, directory / "gunicorn.log", workers=1)
    try:
        pool.wait_ready()
        started = Runtime(directory / "jvm", module(f"http://127.0.0.1:{pool.port}"), {"restart-strategy": "none"})
        try:
            started.wait_running()
            yield started
        finally:
            started.stop()
    finally:
        pool.stop()


def kit_run(steps: list[Step], reports: list[tuple[str, str]]) -> tuple[Flow, list[int]]:
    """Run the steps, then the reports, through the kit; the number of acks after each message."""
    flow = Flow(served, egresses={EGRESS: "kafka", OUT: "kafka", ACKS: "kafka"})
    acks = []
    for typename, id, value, tpe in [*steps, *((t, i, {}, Report) for t, i in reports)]:
        if typename == ADVANCE:
            flow.advance(timedelta(milliseconds=value))
        else:
            flow.send(typename, id, value, tpe)
        acks.append(len(flow.egress(ACKS, topic="acks")))
    return flow, acks


def records(runtime: Runtime, topic: str) -> list[tuple[str, str | None, bytes]]:
    return [(r["egress"], r["key"], base64.b64decode(r["value_base64"])) for r in runtime.records(topic)]


def real_run(runtime: Runtime, steps: list[Step], reports: list[tuple[str, str]], acks: list[int]) -> None:
    """Send each message and wait until the runtime acknowledged as many invocations as the kit ran."""
    base = len(runtime.records("acks"))
    for step, expected in zip([*steps, *((t, i, {}, Report) for t, i in reports)], acks, strict=True):
        real_step(runtime, step, base, base + expected)


def real_step(runtime: Runtime, step: Step, base: int, expected: int) -> None:
    """Send one message (or let time pass) and wait until the runtime's acks reach ``expected``."""
    typename, id, value, tpe = step
    if typename != ADVANCE:
        runtime.send(typename, id, value, typename=tpe.typename)
    what = f"{typename}/{id} <- {value}"

    def settled() -> bool:
        if runtime.proc.poll() is not None:
            pytest.fail(f"the runtime exited after {what}:\n{runtime.log()[-4000:]}")
        seen = len(runtime.records("acks"))
        assert seen <= expected, f"after {what} the runtime ran {seen - base} invocations, the kit {expected - base}"
        return seen == expected
    poll(settled, timeout=30 + (value / 1000 if typename == ADVANCE else 0), interval=0.01)


def compare(runtime: Runtime, flow: Flow, before: dict[str, int]) -> None:
    """Every record the flow produced, topic by topic and in order, equals the runtime's since ``before``."""
    for egress, topic in TOPICS:
        kit = [(e.egress, e.kafka.key, e.kafka.value) for e in flow.egress(egress, topic=topic)]
        assert records(runtime, topic)[before[topic]:] == kit, f"topic {topic} differs; kit trace:\n{flow.trace}"


def counts(runtime: Runtime) -> dict[str, int]:
    return {topic: len(runtime.records(topic)) for _, topic in TOPICS}


def states(flow: Flow) -> dict[str, dict[str, Any]]:
    return {e.kafka.key: json.loads(e.kafka.value) for e in flow.egress(ACKS, topic="state")}


def example_steps() -> tuple[list[Step], list[tuple[str, str]]]:
    def cart(user: str, tpe: Type, **fields: Any) -> Step:
        return (CART, user, {"user_id": user, **fields}, tpe)

    steps: list[Step] = [("example/greeter", name, name, StringType) for name in ("Ada", "Ada", "Bob", "Ada")]
    steps += [(STOCK, "socks", {"item_id": "socks", "quantity": 3}, RestockItem),
              cart("alice", AddToCart, item_id="socks", quantity=1),
              cart("alice", AddToCart, item_id="socks", quantity=1),
              cart("alice", AddToCart, item_id="hats", quantity=1),
              cart("alice", Checkout),
              cart("bob", AddToCart, item_id="socks", quantity=1),
              cart("bob", AddToCart, item_id="socks", quantity=5),
              cart("bob", ClearCart)]
    reports = [("example/greeter", "Ada"), ("example/greeter", "Bob"), (STOCK, "socks"), (STOCK, "hats"),
               (CART, "alice"), (CART, "bob")]
    return steps, reports


def random_steps(seed: int, count: int, last: int = 10) -> tuple[list[Step], list[tuple[str, str]]]:
    """A random command workload over four addresses: ``count`` commands whose delays are 0 (due at once) or
    an hour (never due within the test, maybe cancelled), then ``last`` commands whose delays are 5 s or
    cancellations, then 6 s for those to fall due: sent within a second of real time, the runtime sees the
    same cancellations in time as the kit. No token is reused while pending, which the runtime would fail the
    job on (the kit's own tests cover that)."""
    rng = random.Random(seed)
    ids = ["a", "b", "c", "d"]
    pending: dict[str, set[str]] = {id: set() for id in ids}
    steps: list[Step] = []
    for index in range(count + last):
        me, other, n = rng.choice(ids), rng.choice(ids), rng.randint(-5, 20)
        ops = ["add", "add", "set", "delete", "send", "send", "now", "later", "cancel", "tell"]
        op = rng.choice(ops if index < count else ["later", "later", "cancel"])
        if op == "now":
            command = {"op": "delay", "ms": 0, "to": other, "n": n}
        elif op == "later":
            token = rng.choice([t for t in ("t1", "t2", "t3") if t not in pending[me]] or [""])
            if token:
                pending[me].add(token)
            command = {"op": "delay", "ms": 3_600_000 if index < count else 5_000, "to": other, "n": n,
                       "token": token}
        elif op == "cancel":
            token = rng.choice(sorted(pending[me]) + ["never-sent"])
            pending[me].discard(token)
            command = {"op": "cancel", "token": token}
        else:
            command = {"op": op, "to": other, "n": n}
        steps.append((NODE, me, command, Command))
    steps.append((ADVANCE, "", 6_000, None))  # type: ignore[arg-type]
    steps += [(NODE, id, {"op": "tell"}, Command) for id in ids]
    return steps, [(NODE, id) for id in ids]


def test_the_examples_run_the_same_in_the_kit_and_in_the_runtime(real: Runtime) -> None:
    steps, reports = example_steps()
    before = counts(real)
    flow, acks = kit_run(steps, reports)
    real_run(real, steps, reports, acks)
    compare(real, flow, before)
    assert states(flow)["com.example/stock/socks"] == {"stock": 1}  # the comparison saw real state


@pytest.mark.slow
def test_a_random_workload_runs_the_same_in_the_kit_and_in_the_runtime(real: Runtime) -> None:
    seed = int(os.environ.get("TESTKIT_DIFF_SEED", random.randrange(1 << 30)))
    steps, reports = random_steps(seed, 60)
    before = counts(real)
    flow, acks = kit_run(steps, reports)
    try:
        real_run(real, steps, reports, acks)
        compare(real, flow, before)
    except AssertionError as failure:
        raise AssertionError(f"seed {seed} (TESTKIT_DIFF_SEED={seed} repeats it): {failure}") from failure
    assert sorted(states(flow)) == [f"{NODE}/{id}" for id in "abcd"]


@pytest.mark.slow
def test_state_expires_the_same_in_the_kit_and_in_the_runtime(real: Runtime) -> None:
    """Real time in the runtime, the same time on the kit's clock: each message goes to the kit at the moment
    the runtime acknowledged it. ``written`` expires 4 s after the write; ``called`` lives on while calls come."""
    flow = Flow(served, egresses={EGRESS: "kafka", OUT: "kafka", ACKS: "kafka"})
    before = counts(real)
    base = before["acks"]
    started = time.monotonic()
    for at, step in [(0.0, (TTL, "x", "set", StringType)), (2.0, (TTL, "x", "touch", StringType)),
                     (5.0, (TTL, "x", {}, Report))]:
        time.sleep(max(0.0, started + at - time.monotonic()))
        real_step(real, step, base, base + len(flow.egress(ACKS, topic="acks")) + 1)
        flow.advance(timedelta(seconds=time.monotonic() - started) - flow.now)
        flow.send(*step)
    compare(real, flow, before)
    [state] = states(flow).values()
    assert state["written"] is None  # 5 s or more after its write: the comparison saw an expiry
