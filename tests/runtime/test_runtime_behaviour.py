"""What the real StateFun runtime does with the pool's answers: state registration, TTL, delayed messages,
retries, and the ingress's own bounds."""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid

import pytest

from .local_runtime import Pool, Runtime, counts, wait_for
from .runtime_functions import TTL_SECONDS

pytestmark = [pytest.mark.runtime, pytest.mark.server]


def incomplete_batches(pool: Pool) -> float:
    """How many requests the pool answered with IncompleteInvocationContext (its /metrics)."""
    status, _, body = pool.server.get("/metrics")
    assert status == 200
    return sum(float(m.group(1)) for m in re.finditer(
        r'^statefun_batches_total\{[^}]*outcome="incomplete_context"[^}]*\} (\S+)$', body.decode(), re.M))


def test_a_new_state_is_registered_on_the_first_call(runtime: Runtime, pool: Pool) -> None:
    """The runtime sends no state it does not know; the pool asks for it, the runtime re-sends the batch."""
    before = incomplete_batches(pool)
    id = uuid.uuid4().hex
    runtime.send("runtime-test/fresh", id, {"op": "hit"})
    wait_for(lambda: runtime.values("fresh", id) == [{"seen": 1}])
    # The workers' metrics reach a scrape within a flush interval (0.1 s).
    wait_for(lambda: incomplete_batches(pool) == before + 1, timeout=5)
    runtime.send("runtime-test/fresh", id, {"op": "hit"})
    wait_for(lambda: runtime.values("fresh", id) == [{"seen": 1}, {"seen": 2}])
    time.sleep(0.5)
    assert incomplete_batches(pool) == before + 1  # registered once for the function type


@pytest.mark.slow
def test_state_expires_after_write_and_after_call(runtime: Runtime) -> None:
    id = uuid.uuid4().hex
    sent = 0

    def call(op: str) -> dict[str, str | None]:
        """Send ``op`` and wait for its report (the reports of one address come back in order)."""
        nonlocal sent
        runtime.send("runtime-test/ttl", id, {"op": op})
        sent += 1
        return wait_for(lambda: (r := runtime.values("ttl", id)) and len(r) == sent and r[-1])  # type: ignore

    assert call("set") == {"written": "value", "called": "value"}
    # Called every second: `called` stays; `written` goes once TTL_SECONDS have passed since the write.
    written_at = time.monotonic()
    while time.monotonic() - written_at < TTL_SECONDS + 1.5:
        time.sleep(1)
        last = call("get")
    assert last == {"written": None, "called": "value"}
    # Not called for longer than the TTL: `called` goes too.
    time.sleep(TTL_SECONDS + 1.5)
    assert call("get") == {"written": None, "called": None}


def test_delayed_messages_are_delivered_and_cancelled(runtime: Runtime) -> None:
    sender, later, cancelled = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("sender", "later", "cancelled"))
    runtime.send("runtime-test/counter", sender, {"op": "delay", "to": later, "n": 1, "ms": 500})
    runtime.send("runtime-test/counter", sender, {"op": "delay", "to": cancelled, "n": 1, "ms": 3000,
                                                  "token": "t1"})
    runtime.send("runtime-test/counter", sender, {"op": "cancel", "token": "t1"})
    # Cancelling a token that is not pending is a no-op, not a failure.
    runtime.send("runtime-test/counter", sender, {"op": "cancel", "token": "never-sent"})
    scheduled = time.monotonic()
    round = 0
    while counts(runtime, [later], round)[later] != 1:
        round += 1
        assert time.monotonic() - scheduled < 30, "the delayed message never arrived"
        time.sleep(0.5)
    time.sleep(max(0.0, scheduled + 4.5 - time.monotonic()))
    assert counts(runtime, [later, cancelled, sender], round + 1) == {later: 1, cancelled: 0, sender: 0}


def test_a_function_that_fails_is_retried_within_the_call_budget(runtime: Runtime, pool: Pool) -> None:
    """Three 500s, then success: the runtime retries (backoff 2 ms doubling) without failing the job."""
    starts = runtime.status()["starts"]
    id = uuid.uuid4().hex
    runtime.send("runtime-test/flaky", id, {"fail": 3})
    assert wait_for(lambda: runtime.values("flaky", id)) == [{"attempts": 4}]
    assert runtime.status()["starts"] == starts


def test_the_ingress_bounds_what_it_takes(runtime: Runtime) -> None:
    def post(body: bytes, typename: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", runtime.ingress_port, timeout=30)
        try:
            conn.request("POST", "/runtime-test/sink/x", body, {"Content-Type": f"application/vnd.{typename}"})
            return conn.getresponse().status
        finally:
            conn.close()
    assert post(b"x" * (4 << 20), "runtime-test/Blob") == 202
    assert post(b"x" * ((4 << 20) + 1), "runtime-test/Blob") == 413
    assert post(b"forty-two", "io.statefun.types/int") == 400


def test_egress_records_are_filed_by_topic_and_read_the_playground_way(runtime: Runtime) -> None:
    id = uuid.uuid4().hex
    runtime.send("runtime-test/egresses", id, {"op": "emit"})
    [playground] = wait_for(lambda: runtime.records(f"pg-{id}"))
    assert (playground["typename"], playground["value"]) == ("io.statefun.playground/EgressRecord", id)
    [kinesis] = wait_for(lambda: runtime.records(f"ks-{id}"))
    assert (kinesis["key"], kinesis["value"]) == (id, id)
    # Any other typename: filed under the egress id, the value as the function sent it.
    [note] = wait_for(lambda: [r for r in runtime.records("runtime-test/egress") if id in r["value"]])
    assert note["typename"] == "runtime-test/Note" and json.loads(note["value"]) == {"note": id}
    # GET /{topic} hands out each record once, then answers 404, as the playground's egress does.
    assert runtime.pop(f"pg-{id}") == (200, id.encode())
    assert runtime.pop(f"pg-{id}") == (404, b"")
