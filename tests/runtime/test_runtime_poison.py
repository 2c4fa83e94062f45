"""A message the function can never handle: what the real runtime does with it, and what bounds it.

The runtime retries the request until the endpoint's call budget (`transport.call`) is spent, then fails the
task; Flink restarts the job from its last checkpoint (`restart-strategy`), which sends the same message
again. With a bounded restart strategy the job finally fails for good. docs/deploy.md states the outcome.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime import runner

from .local_runtime import Pool, http_endpoint, wait_for

pytestmark = [pytest.mark.runtime, pytest.mark.server]

CALL_BUDGET_S = 2
MODULE = http_endpoint("runtime-test/*", call=f"{CALL_BUDGET_S}s")


@pytest.mark.slow
def test_a_poison_message_fails_the_job_after_the_call_budget_and_each_restart(
        start_runtime, pool: Pool, shared_dir: Path) -> None:
    runtime = start_runtime(runner.rewrite_hosts(MODULE, pool.url), {
        "execution.checkpointing.interval": "1s",
        "restart-strategy": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "1",
        "restart-strategy.fixed-delay.delay": "1s",
    })
    runtime.wait_running()
    id = f"poison-{time.monotonic_ns()}"
    sent = time.monotonic()
    runtime.send("runtime-test/poison", id, {"op": "eat"})
    # The call budget runs out, the task fails, the job restarts once and sends the message again.
    wait_for(lambda: runtime.status()["starts"] == 2, timeout=60)
    restarted = time.monotonic()
    attempts_before_restart = len(os.listdir(shared_dir / f"poison-{id}"))
    assert runtime.wait_exit(timeout=60) == 1
    failed = time.monotonic()
    attempts = len(os.listdir(shared_dir / f"poison-{id}"))
    log = runtime.log()
    assert "the job failed for good" in log
    assert "Failure forwarding a message to a remote function" in log
    # Every budget is spent on retries (2 ms doubling backoff: a handful of attempts in 2 s).
    assert attempts_before_restart >= 3 and attempts >= attempts_before_restart + 3
    assert restarted - sent >= CALL_BUDGET_S and failed - sent >= 2 * CALL_BUDGET_S
    print(f"poison: {attempts_before_restart} attempts in {restarted - sent:.1f} s until the restart, "
          f"{attempts} attempts in {failed - sent:.1f} s until the job failed for good")
