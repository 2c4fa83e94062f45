"""Server settings, read once from the environment and validated at start-up.

Everything the server and ``gunicorn_config`` need from the environment goes through :class:`Settings`, so a
bad value fails the start with a message naming the variable, never a request later. The names and defaults
are the ones in ``docs/contracts.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from statefun_workers.errors import ConfigurationError

__all__ = ["DEFAULT_FUNCTIONS", "Settings"]

DEFAULT_FUNCTIONS = "examples:functions"
"""What ``STATEFUN_FUNCTIONS`` means when unset: the example functions bundled in the repository."""

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True, slots=True)
class Settings:
    """The server's settings; build with :meth:`from_env`, never per request."""

    port: int = 8000
    web_concurrency: int | None = None
    """Worker processes; None lets ``gunicorn_config`` derive it from the CPU quota."""
    functions: str = DEFAULT_FUNCTIONS
    """``STATEFUN_FUNCTIONS``: comma-separated ``module`` or ``module:attribute`` of ``StatefulFunctions``."""
    max_request_bytes: int = 32 * 1024 * 1024
    graceful_timeout: float = 30.0
    """Seconds in-flight batches get to finish after a worker stops accepting."""
    timeout: float = 60.0
    """gunicorn's heartbeat timeout: a worker silent for this long is killed and replaced."""
    keepalive: float = 20.0
    """Idle keep-alive seconds; above the runtime's pool TTL (15 s + up to 3 s): the runtime closes first."""
    max_requests: int = 0
    max_requests_jitter: int = 0
    drain_seconds: float = 0.0
    """Seconds a worker keeps serving, unready, after SIGTERM, before it stops accepting."""
    blocking_threads: int | None = None
    """Threads for functions bound with ``blocking=True``; None keeps asyncio's default pool size."""
    log_level: str = "info"
    prometheus_multiproc_dir: str | None = None
    # Bounds on what a client can make a worker spend (statefun_workers/limits.py says why each).
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    """Seconds a client gets to send a request's head, from its first byte (or from connecting)."""
    body_stall_timeout: float = 10.0
    """Seconds a request body may go without a byte before the connection is closed."""
    body_timeout: float = 60.0
    """Seconds a request body may take as a whole, from the end of its head: a body dripping in just under the
    stall limit would otherwise hold its connection for as long as it lasts."""
    max_connections: int = 1000
    """Open connections per worker; capped at start by the process's file descriptor limit."""
    max_buffered_bytes: int = 64 * 1024 * 1024
    """Request bytes a worker holds at once, over all its batches; beyond it a batch gets 503."""
    batch_timeout: float = 30.0
    """Seconds a batch may run; below the runtime's call budget (deploy/statefun/module.yaml: 2 min), so a
    hung batch is answered 503 and retried while the budget lasts."""
    expose_errors: bool = False
    """Echo a failing function's exception text in the 500 body (development only: it may hold secrets)."""
    # TLS (docs/tls.md)
    tls_cert_file: str | None = None
    """``STATEFUN_TLS_CERT_FILE``: PEM certificate chain of the function port; set, the port speaks only TLS."""
    tls_key_file: str | None = None
    """``STATEFUN_TLS_KEY_FILE``: PEM private key of that certificate (unencrypted)."""
    tls_client_ca_file: str | None = None
    """``STATEFUN_TLS_CLIENT_CA_FILE``: PEM CA certificates that client certificates must chain to."""
    tls_require_client_cert: bool = False
    """``STATEFUN_TLS_REQUIRE_CLIENT_CERT``: refuse clients without a valid certificate (mTLS); defaults to
    true when a client CA is set."""
    admin_port: int | None = None
    """``STATEFUN_ADMIN_PORT``: a second, plain-HTTP port serving only the probes and ``/metrics``."""
    metrics_flush_seconds: float = 0.1
    """``STATEFUN_METRICS_FLUSH_SECONDS``: how often a worker writes its metric totals for the scrape to read."""
    gc_threshold: int = 20_000
    """``STATEFUN_GC_THRESHOLD``: container allocations between two young-generation collections (Python's
    default is 700). A decoded JSON state lives for one batch and is freed by reference counting; at 700 a
    64 KB document is traversed by the collector while it is alive, and that was 4% of its request."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise :class:`ConfigurationError` naming the bad one."""
        env = os.environ if environ is None else environ
        functions = env.get("STATEFUN_FUNCTIONS", "").strip()
        level = env.get("STATEFUN_LOG_LEVEL", "info").strip().lower()
        if level not in _LOG_LEVELS:
            raise ConfigurationError(
                f"STATEFUN_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {level!r}")
        return cls(
            port=_int(env, "PORT", 8000, minimum=1, maximum=65535),
            web_concurrency=_optional_int(env, "WEB_CONCURRENCY", minimum=1),
            functions=functions or DEFAULT_FUNCTIONS,
            max_request_bytes=_int(env, "STATEFUN_MAX_REQUEST_BYTES", 32 * 1024 * 1024, minimum=1),
            graceful_timeout=_seconds(env, "STATEFUN_GRACEFUL_TIMEOUT", 30.0, minimum=0.0),
            timeout=_seconds(env, "STATEFUN_TIMEOUT", 60.0, minimum=1.0),
            keepalive=_seconds(env, "STATEFUN_KEEPALIVE", 20.0, minimum=1.0),
            max_requests=_int(env, "STATEFUN_MAX_REQUESTS", 0, minimum=0),
            max_requests_jitter=_int(env, "STATEFUN_MAX_REQUESTS_JITTER", 0, minimum=0),
            drain_seconds=_seconds(env, "STATEFUN_DRAIN_SECONDS", 0.0, minimum=0.0),
            blocking_threads=_optional_int(env, "STATEFUN_BLOCKING_THREADS", minimum=1),
            log_level=level,
            prometheus_multiproc_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            max_header_bytes=_int(env, "STATEFUN_MAX_HEADER_BYTES", 32 * 1024, minimum=1024),
            max_headers=_int(env, "STATEFUN_MAX_HEADERS", 100, minimum=8),
            header_timeout=_seconds(env, "STATEFUN_HEADER_TIMEOUT", 10.0, minimum=0.1),
            body_stall_timeout=_seconds(env, "STATEFUN_BODY_STALL_TIMEOUT", 10.0, minimum=0.1),
            body_timeout=_seconds(env, "STATEFUN_BODY_TIMEOUT", 60.0, minimum=0.1),
            max_connections=_int(env, "STATEFUN_MAX_CONNECTIONS", 1000, minimum=1),
            max_buffered_bytes=_int(env, "STATEFUN_MAX_BUFFERED_BYTES", 64 * 1024 * 1024, minimum=1),
            batch_timeout=_seconds(env, "STATEFUN_BATCH_TIMEOUT", 30.0, minimum=0.01),
            expose_errors=_flag(env, "STATEFUN_EXPOSE_ERRORS"),
            metrics_flush_seconds=_seconds(env, "STATEFUN_METRICS_FLUSH_SECONDS", 0.1, minimum=0.001),
            gc_threshold=_int(env, "STATEFUN_GC_THRESHOLD", 20_000, minimum=100),
            # TLS
            **_tls(env),
        )


class _TlsFields(TypedDict):
    tls_cert_file: str | None
    tls_key_file: str | None
    tls_client_ca_file: str | None
    tls_require_client_cert: bool
    admin_port: int | None


def _tls(env: Mapping[str, str]) -> _TlsFields:
    """The TLS and admin-port fields, checked together: a half-configured TLS must not start as plain HTTP."""
    cert = _file(env, "STATEFUN_TLS_CERT_FILE")
    key = _file(env, "STATEFUN_TLS_KEY_FILE")
    client_ca = _file(env, "STATEFUN_TLS_CLIENT_CA_FILE")
    require = _flag(env, "STATEFUN_TLS_REQUIRE_CLIENT_CERT", client_ca is not None)
    if (cert is None) != (key is None):
        missing = "STATEFUN_TLS_KEY_FILE" if key is None else "STATEFUN_TLS_CERT_FILE"
        raise ConfigurationError(f"{missing} must be set too: TLS needs both a certificate and its key")
    if client_ca is not None and cert is None:
        raise ConfigurationError("STATEFUN_TLS_CLIENT_CA_FILE needs STATEFUN_TLS_CERT_FILE and "
                                 "STATEFUN_TLS_KEY_FILE: client certificates are only checked over TLS")
    if require and client_ca is None:
        raise ConfigurationError("STATEFUN_TLS_REQUIRE_CLIENT_CERT needs STATEFUN_TLS_CLIENT_CA_FILE, the CA "
                                 "that client certificates are checked against")
    admin_port = None
    if _raw(env, "STATEFUN_ADMIN_PORT") is not None:
        admin_port = _int(env, "STATEFUN_ADMIN_PORT", 0, minimum=1, maximum=65535)
        if admin_port == _int(env, "PORT", 8000, minimum=1, maximum=65535):
            raise ConfigurationError(f"STATEFUN_ADMIN_PORT must differ from PORT, both are {admin_port}")
    return {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": client_ca,
            "tls_require_client_cert": require, "admin_port": admin_port}


def _file(env: Mapping[str, str], name: str) -> str | None:
    path = _raw(env, name)
    if path is not None and not os.access(path, os.R_OK):
        why = "is not readable" if os.path.exists(path) else "does not exist"
        raise ConfigurationError(f"{name} names a file that {why}: {path!r}")
    if path is not None and not os.path.isfile(path):
        raise ConfigurationError(f"{name} must name a file, got the directory {path!r}")
    return path


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigurationError(f"{name} must be {bounds}, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    if _raw(env, name) is None:
        return None
    return _int(env, name, 0, minimum=minimum)


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false (1/0), got {raw!r}")


def _seconds(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = float(raw.removesuffix("s"))
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):  # NOTE: `not >=` also rejects NaN.
        raise ConfigurationError(
            f"{name} must be a finite number of seconds, at least {minimum:g}, got {raw!r}")
    return value
