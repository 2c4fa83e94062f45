"""A stand-in for the core's BatchResult (docs/contracts.md), so the metrics can be tested on their own."""

from __future__ import annotations

from dataclasses import dataclass

from statefun_workers.errors import StatefunError


@dataclass
class FakeResult:
    """The fields the recorder reads, with a one-message ok batch as default."""

    response: bytes = b"\x00" * 10
    error: StatefunError | None = None
    outcome: str = "ok"
    typename: str | None = "test/fn"
    id: str | None = "id"
    invocations: int = 1
    state_bytes_read: int = 0
    state_bytes_written: int = 0
    messages: int = 0
    delayed: int = 0
    cancellations: int = 0
    egresses: int = 0
