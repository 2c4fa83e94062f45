"""One send per response: uvicorn's httptools protocol over a transport that joins the writes of one loop turn.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``, and the body
when it sends ``http.response.body``: two ``write()`` system calls, and two TCP segments, for every batch
answer (strace on a worker: 2,000 writes for 1,000 requests). The ASGI app sends both in the same turn of the
event loop, so a transport that keeps what is written until the end of that turn sends them together: one
system call and one segment per response, with no change to what is sent or in which order.

Only ``write`` and ``writelines`` are deferred, to the end of the current loop turn (``call_soon``); ``close``
sends what is pending first; everything else goes straight to the real transport. Flow control is unchanged:
the real transport still pauses the protocol when its buffer fills (at most one loop turn later).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["JoinedWritesHttpToolsProtocol", "JoinedWritesTransport"]


class JoinedWritesTransport:
    """Wraps a transport: the writes of one event-loop turn leave in one ``write`` of the real transport."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.BaseTransport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport: Any = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._send_pending)
        # NOTE: a transport owns what it was given once write() returns; a caller may reuse a bytearray.
        self._pending.append(data if type(data) is bytes else bytes(data))

    def writelines(self, list_of_data: Iterable[bytes]) -> None:
        for data in list_of_data:
            self.write(data)

    def _send_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        # NOTE: a transport closed by the peer in the meantime drops the bytes, as it would have anyway.
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._send_pending()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class JoinedWritesHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through :class:`JoinedWritesTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWritesTransport(transport, self.loop))  # type: ignore[arg-type]
