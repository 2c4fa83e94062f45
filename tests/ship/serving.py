"""A server process started as a user starts it (a command line), on loopback, always stopped after."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.server_process import Server, poll
from tests.support import free_port

__all__ = ["Served", "build_info_sample", "free_port"]


class Served(Server):
    """``argv`` running in its own session with output to ``log_path``; ``port`` is where it should listen.

    Stopping, logs and HTTP are the server tests' (``tests/server_process.py``); only the start differs.
    """

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, port: int,
                 cwd: Path | None = None) -> None:  # NOTE: not Server's: that one starts the repository's app
        self.workers = 0
        self.port = port
        self.client_tls = None  # plain HTTP, no admin port: what Server.connect needs to know
        self.admin_port = None
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll ``/readyz`` until it answers 200; fail at once if the process exits."""
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.proc.args} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False
        poll(ready, timeout, interval=0.1)

    def terminate(self, timeout: float) -> float:
        """SIGTERM; the seconds until the process exited (fails the test past ``timeout``)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout} s after SIGTERM:\n{self.log()}")
        return time.monotonic() - started

    def start_record(self) -> dict[str, object]:
        """The master's one line about what it runs (statefun_workers.build_info.log_start)."""
        records = [r for r in self.log_records() if r.get("logger") == "statefun_workers.start" and "build" in r]
        assert len(records) == 1, self.log()
        return records[0]


def build_info_sample(metrics_text: str) -> dict[str, str]:
    """The labels of the one ``statefun_build_info`` sample of a scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = [s for f in text_string_to_metric_families(metrics_text) if f.name == "statefun_build_info"
               for s in f.samples]
    assert len(samples) == 1 and samples[0].value == 1.0, samples
    return dict(samples[0].labels)
