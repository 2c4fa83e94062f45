"""The upstream internals this package relies on, checked once when the server starts.

``http_protocol.py`` subclasses uvicorn's httptools protocol and uses its fields; ``worker.py`` restates
uvicorn-worker's private ``_serve``; ``metrics.py`` and ``multiprocess.py`` write prometheus-client's
``mmap_dict`` files and replace its ``values.ValueClass``. pyproject.toml bounds each version, and ``make test``
runs the server on both ends of each range, but a release inside a range may still move a private name. Then
the master stops at start with :class:`UpstreamError`, naming the package, its version and what moved, instead
of a worker failing on its first request.

A name counts as present when the class (or module) has it, or when the class's source assigns it
(``self.<name>``): instance fields exist only once an object is built.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re

__all__ = ["USED", "UpstreamError", "check"]


class UpstreamError(RuntimeError):
    """An installed dependency lacks an internal this package uses."""


USED: tuple[tuple[str, str, str | None, tuple[str, ...]], ...] = (
    # (distribution, module, class or None for the module itself, the names used)
    ("uvicorn", "uvicorn.protocols.http.httptools_impl", None,
     ("HEADER_RE", "HEADER_VALUE_RE", "STATUS_LINE", "HttpToolsProtocol", "RequestResponseCycle")),
    ("uvicorn", "uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol",
     ("connection_made", "connection_lost", "on_message_begin", "on_headers_complete", "on_response_complete",
      "pause_writing", "resume_writing", "_unset_keepalive_if_required", "_should_upgrade",
      "_unsupported_upgrade_warning", "handle_websocket_upgrade", "send_400_response", "access_log", "client",
      "connections", "cycle", "expect_100_continue", "flow", "headers", "loop", "parser",
      "pipeline", "scope", "server_state", "timeout_keep_alive", "timeout_keep_alive_handler",
      "timeout_keep_alive_task", "transport")),
    ("uvicorn", "uvicorn.protocols.http.httptools_impl", "RequestResponseCycle",
     ("send", "access_log", "chunked_encoding", "default_headers", "disconnected", "expected_content_length",
      "flow", "keep_alive", "message_event", "on_response", "response_complete", "response_started", "scope",
      "transport", "waiting_for_100_continue")),
    ("uvicorn", "uvicorn.server", "Server",
     ("handle_exit", "on_tick", "startup", "serve", "should_exit", "force_exit", "started", "server_state",
      "servers", "lifespan")),
    ("uvicorn", "uvicorn.config", "Config", ("app", "http", "timeout_graceful_shutdown", "timeout_keep_alive")),
    ("uvicorn-worker", "uvicorn_worker", "UvicornWorker",
     ("CONFIG_KWARGS", "run", "_serve", "config")),
    ("prometheus-client", "prometheus_client.mmap_dict", None, ("MmapedDict", "mmap_key")),
    ("prometheus-client", "prometheus_client.mmap_dict", "MmapedDict",
     ("write_value", "read_all_values_from_file", "close")),
    ("prometheus-client", "prometheus_client.values", None, ("ValueClass", "MultiProcessValue")),
    ("prometheus-client", "prometheus_client.multiprocess", None, ("MultiProcessCollector", "mark_process_dead")),
    ("prometheus-client", "prometheus_client.multiprocess", "MultiProcessCollector", ("merge",)),
)
"""Every upstream name the package reaches past the documented API, by where it lives."""


def check() -> None:
    """Raise :class:`UpstreamError` naming each internal of :data:`USED` that the installed versions lack."""
    missing: dict[str, list[str]] = {}
    for distribution, module_name, class_name, names in USED:
        module = importlib.import_module(module_name)
        owner = module if class_name is None else getattr(module, class_name, None)
        where = module_name if class_name is None else f"{module_name}.{class_name}"
        if owner is None:
            missing.setdefault(distribution, []).append(where)
            continue
        source = _source(owner) if class_name is not None else ""
        missing.setdefault(distribution, []).extend(
            f"{where}.{name}" for name in names
            if not hasattr(owner, name) and not re.search(rf"\bself\.{name}\b", source))
    # NOTE: the worker's _serve replaces uvicorn-worker's; it only runs if run() still calls it.
    worker = importlib.import_module("uvicorn_worker").UvicornWorker
    if "self._serve(" not in _source(worker.run):
        missing.setdefault("uvicorn-worker", []).append("UvicornWorker.run calling self._serve()")
    problems = [f"{distribution} {importlib.metadata.version(distribution)} lacks {', '.join(names)}"
                for distribution, names in missing.items() if names]
    if problems:
        raise UpstreamError("; ".join(problems) + " (internals statefun-workers relies on)")


def _source(owner: object) -> str:
    """The source of a class and its bases (or of a function), where Python has it."""
    classes = inspect.getmro(owner) if inspect.isclass(owner) else (owner,)
    parts = []
    for item in classes:
        try:
            parts.append(inspect.getsource(item))  # type: ignore[arg-type]
        except (OSError, TypeError):  # a built-in base (object), or a class without source
            continue
    return "\n".join(parts)
