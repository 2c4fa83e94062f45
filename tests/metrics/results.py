"""Real ``BatchResult``s with chosen figures, so the metrics can be tested without running a batch."""

from __future__ import annotations

from statefun_workers.errors import StatefunError
from statefun_workers.handler import BatchResult


def batch_result(*, response: bytes = b"\x00" * 10, error: StatefunError | None = None, outcome: str = "ok",
                 typename: str | None = "test/fn", id: str | None = "id", invocations: int = 1,
                 state_bytes_read: int = 0, state_bytes_written: int = 0, messages: int = 0, delayed: int = 0,
                 cancellations: int = 0, egresses: int = 0) -> BatchResult:
    """A result as the core would return it; by default a one-message ok batch."""
    result = BatchResult(response=response, error=error, outcome=outcome, typename=typename, id=id,
                         invocations=invocations, state_bytes_read=state_bytes_read)
    result.state_bytes_written = state_bytes_written
    result.messages = messages
    result.delayed = delayed
    result.cancellations = cancellations
    result.egresses = egresses
    return result
