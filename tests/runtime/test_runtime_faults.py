"""Exactly-once under faults: the real runtime, checkpointing every second, against a pool that keeps dying.

A random workload (increments, messages between addresses, delayed messages, delayed messages cancelled)
runs while workers are SIGKILLed, the master is reloaded with SIGHUP, the whole pool is SIGKILLed and
started again on the same port, and the job itself fails once and restarts from its last checkpoint. Every
counter must end with exactly the sum the workload sent it: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .local_runtime import Pool, Runtime, counts, wait_for

pytestmark = [pytest.mark.runtime, pytest.mark.server, pytest.mark.slow]

ADDRESSES = 8
COMMANDS = 240
WORKLOAD_SECONDS = 12.0
CANCELLED_DELAY_MS = 12_000
"""Long enough that a cancel sent right behind its message arrives first, even behind a restarting pool."""


def workload(rng: random.Random, ids: list[str]) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, int]]:
    """Commands (address id, command) and the count each address must end with."""
    commands: list[tuple[str, dict[str, Any]]] = []
    expected = dict.fromkeys(ids, 0)
    for i in range(COMMANDS):
        at, to, n = rng.choice(ids), rng.choice(ids), rng.randint(1, 9)
        kind = rng.choice(("inc", "forward", "delay", "cancelled"))
        if kind == "inc":
            commands.append((at, {"op": "inc", "n": n}))
            expected[at] += n
        elif kind == "forward":
            commands.append((at, {"op": "forward", "to": to, "n": n}))
            expected[to] += n
        elif kind == "delay":
            commands.append((at, {"op": "delay", "to": to, "n": n, "ms": rng.randint(50, 1500)}))
            expected[to] += n
        else:
            token = f"t{i}"
            commands.append((at, {"op": "delay", "to": to, "n": n, "ms": CANCELLED_DELAY_MS, "token": token}))
            commands.append((at, {"op": "cancel", "token": token}))
    return commands, expected


class Faults(threading.Thread):
    """SIGKILL a worker every 0.5 s, SIGHUP the master every 2 s, restart the whole pool every 4 s."""

    def __init__(self, pool: Pool, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.pool, self.rng = pool, rng
        self.done = threading.Event()
        self.kills = self.reloads = self.restarts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            tick = 0
            while not self.done.wait(0.5):
                tick += 1
                if tick % 8 == 0:
                    self.pool.restart()
                    self.restarts += 1
                elif tick % 4 == 0:
                    self.pool.server.signal(signal.SIGHUP)
                    self.reloads += 1
                elif workers := sorted(self.pool.server.worker_pids()):
                    os.kill(self.rng.choice(workers), signal.SIGKILL)
                    self.kills += 1
        except BaseException as e:  # reported by the test
            self.error = e


def test_exactly_once_under_worker_kills_reloads_pool_restarts_and_a_job_restart(
        runtime: Runtime, pool: Pool, shared_dir: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ids = [f"eo-{seed}-{k}" for k in range(ADDRESSES)]
    commands, expected = workload(rng, ids)
    starts = runtime.status()["starts"]
    crash = shared_dir / "crash"

    faults = Faults(pool, rng)
    faults.start()
    try:
        began = time.monotonic()
        for i, (at, command) in enumerate(commands):
            runtime.send("runtime-test/counter", at, command)
            if i == len(commands) // 3:
                # Fail the job once: a function that fails for longer than its call budget (2 s).
                crash.touch()
                runtime.send("runtime-crash/crasher", "c", {"op": "crash"})
            if crash.exists() and runtime.status()["starts"] > starts:
                crash.unlink()
            time.sleep(max(0.0, began + WORKLOAD_SECONDS * (i + 1) / len(commands) - time.monotonic()))
        wait_for(lambda: runtime.status()["starts"] > starts, timeout=60)
        crash.unlink(missing_ok=True)
        last_cancellable = time.monotonic()
    finally:
        faults.done.set()
        faults.join(timeout=60)
    assert faults.error is None, faults.error
    assert faults.kills and faults.reloads and faults.restarts, vars(faults)
    wait_for(lambda: runtime.values("crasher", "c"), timeout=60)

    # Past the fire time of every cancelled message, the counts must be exact, and stay so.
    time.sleep(max(0.0, last_cancellable + CANCELLED_DELAY_MS / 1000 + 1 - time.monotonic()))
    deadline = time.monotonic() + 90
    round = 0
    while (got := counts(runtime, ids, round, timeout=90)) != expected and time.monotonic() < deadline:
        round += 1
        time.sleep(1)
    assert got == expected, f"seed {seed}: got {got}, expected {expected}"
    # The pool's faults were absorbed by retries: the only function that ever failed the job is the crasher.
    assert set(re.findall(r"Failure forwarding a message to a remote function Address\(([^,]+),", runtime.log())) \
        == {"runtime-crash"}
    time.sleep(2)
    assert counts(runtime, ids, round + 1) == expected, f"seed {seed}"
    print(f"exactly-once (seed {seed}): {len(commands)} commands, {faults.kills} workers killed, "
          f"{faults.reloads} reloads, {faults.restarts} pool restarts, "
          f"{runtime.status()['starts'] - starts} job restarts")
