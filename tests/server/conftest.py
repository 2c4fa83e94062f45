"""Fixtures that run the real server (tests/server_process.py): one per test, or one shared by a module."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server_process import Server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with extra environment (``start_server(workers=1, STATEFUN_X="1")``); stopped after.

    With ``STATEFUN_ADMIN_PORT`` the server also listens there (and readiness is polled there); ``client_tls``
    is the context the server's own connections use on the function port."""
    servers: list[Server] = []

    def start(workers: int = 2, client_tls: ssl.SSLContext | None = None, **env: str) -> Server:
        directory = tmp_path / f"server{len(servers)}"
        directory.mkdir()
        server = Server(env, directory / "gunicorn.log", workers, client_tls)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One 2-worker server shared by a module's tests that leave it as they found it."""
    directory = tmp_path_factory.mktemp("shared-server")
    server = Server({"STATEFUN_MAX_REQUEST_BYTES": "65536"}, directory / "gunicorn.log", workers=2)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
