"""Fixtures that run the real Apache Flink StateFun runtime (runtime/: one JVM) against a real pool.

One pool and one JVM serve the whole session: a JVM start costs seconds of CPU on 2 cores. The JVM loads the
shipped deploy/statefun/module.yaml with only its endpoints' host rewritten, plus the endpoints of the test
functions (runtime_functions.py). A test that needs other settings (the poison message) starts its own JVM.
Java and Maven are installed by `make test` (scripts/install-system-deps.sh): without them the tests fail,
naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .local_runtime import SESSION_SETTINGS, Pool, Runtime, require_runner, session_module


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the test functions count attempts and find the tests' signals (RUNTIME_TEST_DIR)."""
    return tmp_path_factory.mktemp("runtime-shared")


@pytest.fixture(scope="session")
def pool(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Iterator[Pool]:
    require_runner()
    pool = Pool(tmp_path_factory.mktemp("runtime-pool"), shared_dir)
    yield pool
    pool.stop()


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory, pool: Pool) -> Iterator[Runtime]:
    """The session's StateFun job, checkpointing every second, restarting up to 20 times."""
    started = Runtime(tmp_path_factory.mktemp("runtime-jvm"), session_module(pool.url), SESSION_SETTINGS)
    try:
        started.wait_running()
        yield started
    finally:
        started.stop()


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Start a JVM of the test's own (``start_runtime(module_text, settings)``); stopped after the test."""
    started: list[Runtime] = []

    def start(module: str, settings: dict[str, str]) -> Runtime:
        require_runner()
        runtime = Runtime(tmp_path / f"runtime{len(started)}", module, settings)
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()
