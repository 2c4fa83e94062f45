"""The gunicorn worker class: uvicorn (uvloop + httptools) serving the ASGI app, with a readiness drain.

Why a subclass of ``uvicorn_worker.UvicornWorker`` rather than the class itself:

* the event loop and HTTP parser are pinned to uvloop and httptools (the fastest pair measured here), the
  access log is off (one line per batch costs more than the batch), and so is uvicorn's ``server`` header;
* the HTTP protocol is uvicorn's httptools one with a shorter path for this server's answers
  (``http_protocol``: one write per response, header checks remembered, one keep-alive timer per idle period);
* uvicorn's proxy-headers middleware is off: it rewrites the client address from ``X-Forwarded-For``, which
  nothing here reads (the runtime calls the Service directly), and it cost ~3% of a greeter request;
* the protocol enforces the bounds of ``statefun_workers.limits`` (header size and time, body stalls,
  connections: the count capped by the descriptor limit), with the time limits checked by one sweep every
  half second from ``on_tick`` rather than a timer per request; large freed buffers go back to the system;
* TLS (``STATEFUN_TLS_*``) goes on the function port only, and ``STATEFUN_ADMIN_PORT`` is served plain with
  the probes and ``/metrics`` alone (``statefun_workers.tls``), where gunicorn's own certfile would wrap every
  socket; the worker serves those sockets with its own listeners, sharing uvicorn's protocol and state;
* SIGTERM first turns ``/readyz`` to 503 and, with ``STATEFUN_DRAIN_SECONDS`` > 0, keeps serving for that
  long so that Kubernetes can take the pod out of its Service before the worker stops accepting; then
  uvicorn's graceful shutdown gives in-flight batches ``STATEFUN_GRACEFUL_TIMEOUT`` seconds to finish;
* the worker then returns normally instead of re-raising SIGTERM at itself, so gunicorn's ``worker_exit`` hook
  runs (the metrics use it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import signal
import socket
import ssl
import sys
import time
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from statefun_workers import tls
from statefun_workers.errors import ConfigurationError
from statefun_workers.limits import connection_cap, return_large_buffers_to_os
from statefun_workers.logs import LOGGER_NAME
from statefun_workers.server import PROCESS_READINESS, Readiness, create_admin_app
from statefun_workers.settings import Settings

log = logging.getLogger(f"{LOGGER_NAME}.worker")

_SWEEP_TICKS = 5
"""uvicorn ticks (0.1 s each) between two sweeps of the connections' head and body time limits."""

__all__ = ["StatefunWorker"]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


_HTTPTOOLS = _installed("httptools")


def _http_protocol() -> Any:
    """uvicorn's httptools protocol with this server's fast path (``http_protocol``) when httptools is
    installed, else uvicorn's h11."""
    if not _HTTPTOOLS:
        return "h11"
    from statefun_workers.http_protocol import HttpProtocol  # noqa: PLC0415

    return HttpProtocol


class _DrainingServer(Server):
    """uvicorn's server, but SIGTERM first drains (unready, still serving) before the graceful shutdown."""

    def __init__(self, config: Config, readiness: Readiness, drain_seconds: float) -> None:
        super().__init__(config)
        self._readiness = readiness
        self._drain_seconds = drain_seconds
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # NOTE: runs as a plain signal handler; it only sets flags that on_tick() polls every 0.1 s.
        self._readiness.draining = True
        if sig == signal.SIGTERM and self._drain_seconds > 0:
            # NOTE: a second SIGTERM during the drain does not cut it short: a kill of the whole process group
            #   (systemd's default) reaches the worker twice, from the sender and from the master. The master's
            #   graceful_timeout already covers the drain; SIGINT or SIGQUIT skip it and stop at once, in-flight
            #   batches finishing within STATEFUN_GRACEFUL_TIMEOUT.
            if self._drain_until is None:
                self._drain_until = time.monotonic() + self._drain_seconds
            return
        # NOTE: unlike uvicorn, do not record the signal to re-raise it after shutdown: returning normally
        #   lets gunicorn run its worker_exit hook, and the master knows why the worker stopped.
        if self.should_exit and sig in (signal.SIGINT, signal.SIGQUIT):
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        if counter % _SWEEP_TICKS == 0 and _HTTPTOOLS:
            from statefun_workers.http_protocol import enforce_deadlines  # noqa: PLC0415

            enforce_deadlines(self.server_state.connections, asyncio.get_running_loop().time())
        return await super().on_tick(counter)


class StatefunWorker(UvicornWorker):
    """gunicorn worker running the statefun-workers ASGI app; see the module docstring."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop" if _installed("uvloop") else "asyncio",
        "http": _http_protocol(),
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings = Settings.from_env()
        # NOTE: gunicorn's own graceful_timeout (set by gunicorn_config) also covers the drain and a margin;
        #   uvicorn cancels what is still running at this deadline, before the master would SIGKILL us.
        self.config.timeout_graceful_shutdown = self._settings.graceful_timeout
        if self.config.http is not None and not isinstance(self.config.http, str):
            from statefun_workers.http_protocol import limited  # noqa: PLC0415

            max_connections = connection_cap(self._settings.max_connections)
            self.config.http = limited(dataclasses.replace(self._settings, max_connections=max_connections))
            if max_connections < self._settings.max_connections:
                log.warning("STATEFUN_MAX_CONNECTIONS lowered from %d to %d: the file descriptor limit is lower",
                            self._settings.max_connections, max_connections)

    async def _serve(self) -> None:
        return_large_buffers_to_os()
        self.config.app = self.wsgi
        server, sockets = self._server()
        # NOTE: not uvicorn-worker's SIGQUIT handler: it clears gunicorn's `alive` flag, which the uvicorn server
        #   never reads, so a worker told to stop now (the master's SIGINT or SIGQUIT) served on until SIGKILL.
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, server.handle_exit, signal.SIGQUIT, None)
        await server.serve(sockets=sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _server(self) -> tuple[_DrainingServer, list[Any]]:
        """The uvicorn server and the sockets it serves itself. With TLS or an admin port (``tls``), the worker
        serves those sockets with its own listeners instead: the function sockets with TLS, the sockets of
        ``STATEFUN_ADMIN_PORT`` plain, with an app of only the probes and /metrics."""
        settings = self._settings
        try:
            context = tls.server_context(settings)
            sockets, admin_sockets = tls.split_sockets(self.sockets, settings.admin_port)
        except ConfigurationError as ex:
            # NOTE: a worker that cannot boot this way never will: the boot error code stops the whole pool.
            self.log.error("%s", ex)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        if context is None and not admin_sockets:
            return _DrainingServer(self.config, PROCESS_READINESS, settings.drain_seconds), sockets
        listeners = []
        if context is not None:
            listeners.append(tls.Listener(sockets, self.config, context, settings.header_timeout))
            sockets = []
            self.log.info("functions served over TLS%s", ", client certificates required"
                          if context.verify_mode == ssl.CERT_REQUIRED else "")
        if admin_sockets:
            # NOTE: the function port's HTTP protocol class, with its header and time limits, and room for
            #   ADMIN_CONNECTIONS more connections, so that a flood of the function port leaves the kubelet's
            #   probes and Prometheus's scrapes their way in (a failed liveness probe would restart the pod).
            admin_config = Config(app=create_admin_app(PROCESS_READINESS), log_config=None,
                                  timeout_keep_alive=self.config.timeout_keep_alive,
                                  **{**self.CONFIG_KWARGS, "http": _admin_protocol(self.config.http),
                                     "lifespan": "off"})
            listeners.append(tls.Listener(admin_sockets, admin_config))
        return _ListeningServer(self.config, PROCESS_READINESS, settings.drain_seconds, listeners), sockets


ADMIN_CONNECTIONS = 16
"""Connections the admin port may open beyond ``STATEFUN_MAX_CONNECTIONS`` (within the descriptors kept spare)."""


def _admin_protocol(protocol: Any) -> Any:
    """The function port's protocol class with ``ADMIN_CONNECTIONS`` more connections allowed."""
    limits = getattr(protocol, "limits", None)
    if limits is None:  # uvicorn's own protocol (no httptools): no connection bound to widen
        return protocol
    from statefun_workers.http_protocol import limited  # noqa: PLC0415

    return limited(dataclasses.replace(limits, max_connections=limits.max_connections + ADMIN_CONNECTIONS))


class _ListeningServer(_DrainingServer):
    """The draining server that, once started, also accepts on the worker's own listeners (``tls``)."""

    def __init__(self, config: Config, readiness: Readiness, drain_seconds: float,
                 listeners: list[tls.Listener]) -> None:
        super().__init__(config, readiness, drain_seconds)
        self._listeners = listeners

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            # NOTE: uvicorn's shutdown closes every server in self.servers, and these connections share
            #   server_state with uvicorn's own, so they are closed and waited for the same way.
            for listener in self._listeners:
                self.servers.extend(await listener.listen(self.server_state, self.lifespan.state))
