"""TLS on the function port, and the plain admin port beside it (``docs/tls.md``).

Why not gunicorn's own ``certfile``/``keyfile``/``ca_certs``/``cert_reqs``: with those, uvicorn-worker wraps
every socket the worker listens on in TLS. With client certificates required, the kubelet's probes and
Prometheus (which present none) could then reach nothing. Here the worker splits its listening sockets by
port:

* the function sockets get this module's :func:`server_context` (TLS, and mTLS when a client CA is set), and
  the full app;
* the sockets of ``STATEFUN_ADMIN_PORT`` stay plain HTTP and get a second app with only ``/healthz``,
  ``/readyz`` and ``/metrics`` (``server.create_admin_app``), so a batch can never arrive without TLS.

Both are served by :class:`Listener` with the same uvicorn server state, so a graceful shutdown closes their
connections too. With neither TLS nor an admin port set, none of this runs: uvicorn serves gunicorn's sockets
and the request path is as before.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from statefun_workers.errors import ConfigurationError
from statefun_workers.settings import Settings

__all__ = ["Listener", "server_context", "split_sockets"]


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The function port's TLS context, or None for plain HTTP; every file is read now, at start-up.

    Raises :class:`ConfigurationError` naming the setting whose file does not load.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # NOTE: the StateFun runtime (Java 11+, Netty) speaks TLS 1.2 and 1.3; older versions are refused.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as ex:
        raise ConfigurationError(
            f"STATEFUN_TLS_CERT_FILE ({settings.tls_cert_file!r}) and STATEFUN_TLS_KEY_FILE "
            f"({settings.tls_key_file!r}) do not load as a PEM certificate chain and its private key: {ex}"
        ) from None
    if settings.tls_client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
        except (OSError, ssl.SSLError) as ex:
            raise ConfigurationError(
                f"STATEFUN_TLS_CLIENT_CA_FILE ({settings.tls_client_ca_file!r}) does not load as PEM CA "
                f"certificates: {ex}") from None
        context.verify_mode = ssl.CERT_REQUIRED if settings.tls_require_client_cert else ssl.CERT_OPTIONAL
    return context


def split_sockets(sockets: Iterable[Any], admin_port: int | None) -> tuple[list[Any], list[Any]]:
    """(function sockets, admin sockets) of the worker's listeners, told apart by ``admin_port``.

    Raises :class:`ConfigurationError` when an admin port is set but gunicorn does not listen on it (a
    ``-b``/``--bind`` on the command line replaces the binds of ``gunicorn_config``), or listens on nothing
    else.
    """
    sockets = list(sockets)
    if admin_port is None:
        return sockets, []
    admin = [s for s in sockets if _port(s) == admin_port]
    functions = [s for s in sockets if _port(s) != admin_port]
    if not admin:
        raise ConfigurationError(
            f"STATEFUN_ADMIN_PORT is {admin_port} but gunicorn does not listen on it (a -b/--bind on the command "
            f"line replaces the configured binds: add -b 0.0.0.0:{admin_port})")
    if not functions:
        raise ConfigurationError(f"gunicorn listens only on STATEFUN_ADMIN_PORT ({admin_port}): the functions "
                                 "need a port of their own")
    return functions, admin


def _port(sock: Any) -> int | None:
    address = sock.getsockname()
    return address[1] if isinstance(address, tuple) else None  # a Unix socket's address is its path


class Listener:
    """Sockets that the worker serves beside uvicorn's own: the TLS function sockets, or the plain admin ones.

    uvicorn would serve the TLS sockets too, but it cannot bound their handshake: the event loop's default
    allows 60 s, during which a connection is not yet one the HTTP protocol sees, limits or counts. Here the
    handshake gets ``handshake_timeout`` (``STATEFUN_HEADER_TIMEOUT``), since it is part of receiving the head.
    """

    def __init__(self, sockets: Sequence[Any], config: Config, context: ssl.SSLContext | None = None,
                 handshake_timeout: float | None = None) -> None:
        self._sockets = list(sockets)
        self._config = config
        self._context = context
        self._handshake_timeout = handshake_timeout if context is not None else None
        if not config.loaded:
            config.load()

    async def listen(self, state: ServerState, app_state: dict[str, Any]) -> list[asyncio.Server]:
        """Start accepting on every socket; connections join ``state``, the uvicorn server's, so that its
        shutdown closes them, and its connection limit counts them."""
        loop = asyncio.get_running_loop()
        config = self._config

        def protocol() -> asyncio.Protocol:
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=state, app_state=app_state, _loop=loop)
            return made

        return [await loop.create_server(protocol, sock=sock, ssl=self._context, backlog=config.backlog,
                                         ssl_handshake_timeout=self._handshake_timeout)
                for sock in self._sockets]
