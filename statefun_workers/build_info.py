"""What this server runs: version, compiled or not, Python, protobuf, and the typenames it serves.

A server built without its compiled modules answers every request correctly at about half the speed, and
nothing else shows it. So the master logs one line at start with these facts (:func:`log_start`), and
``/metrics`` exposes the same labels as ``statefun_build_info`` (value 1; :class:`BuildInfoCollector`), where
a dashboard or an alert can see a slow build, a version skew between pods, or a function that is not served.

The typenames are the ones the last :func:`statefun_workers.server.create_app` of this process serves (with
gunicorn's ``preload_app``, the master's, inherited by every worker).
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
from collections.abc import Iterable, Iterator
from typing import Any

from ._version import __version__
from .logs import LOGGER_NAME

__all__ = ["COMPILED_MODULES", "BuildInfoCollector", "compiled", "labels", "log_start", "serve_typenames"]

COMPILED_MODULES = ("_wire", "types", "messages", "egress", "context", "_dispatch", "cells", "_read", "_tally",
                    "_json")
"""The modules mypyc compiles: the one list. setup.py and the Makefile read it from this file's text (a build
cannot import the package before its dependencies are installed), so it stays a literal tuple."""

log = logging.getLogger(f"{LOGGER_NAME}.start")

_served: tuple[str, ...] | None = None


def serve_typenames(typenames: Iterable[str]) -> None:
    """Record the typenames this process serves (``create_app`` calls it)."""
    global _served
    _served = tuple(sorted(typenames))


def compiled() -> bool:
    """True when every module setup.py compiles is loaded as an extension, not from its ``.py`` source."""
    for name in COMPILED_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        if (getattr(module, "__file__", None) or "").endswith(".py"):
            return False
    return True


def _protobuf() -> tuple[str, str]:
    """(protobuf's version, its backend: ``upb``, ``cpp`` or ``python``, the slow one)."""
    import google.protobuf
    from google.protobuf.internal import api_implementation

    return google.protobuf.__version__, api_implementation.Type()


def labels() -> dict[str, str]:
    """The facts, as Prometheus label values (strings); ``typenames`` is comma-separated, sorted."""
    protobuf_version, backend = _protobuf()
    return {
        "version": __version__,
        "compiled": "true" if compiled() else "false",
        "python": platform.python_version(),
        "protobuf": protobuf_version,
        "protobuf_backend": backend,
        "typenames": ",".join(_served or ()),
    }


def log_start() -> None:
    """Log the facts on one line (the master, once the app is loaded), and a warning for a slow build."""
    facts = labels()
    served = "none loaded yet" if _served is None else f"{len(_served)}: {facts['typenames'] or '-'}"
    log.info("statefun-workers %s, compiled=%s, Python %s, protobuf %s (%s), serving %s", facts["version"],
             facts["compiled"], facts["python"], facts["protobuf"], facts["protobuf_backend"], served,
             extra={"build": facts})
    if facts["compiled"] != "true" and os.environ.get("STATEFUN_WORKERS_PURE_PYTHON") != "1":
        log.warning("the pure-Python modules are running, about 2x slower per batch: this install was built "
                    "without a C compiler or with STATEFUN_WORKERS_PURE_PYTHON=1. Reinstall with gcc and "
                    "Python's headers present, or set STATEFUN_WORKERS_PURE_PYTHON=1 here to say it is meant")
    if facts["protobuf_backend"] == "python":
        log.warning("protobuf runs its pure-Python backend (%s), several times slower: check "
                    "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION and that protobuf's wheel matches this platform",
                    facts["protobuf_backend"])


class BuildInfoCollector:
    """A prometheus-client collector of the one ``statefun_build_info`` sample, read when scraped."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        facts = labels()
        family = GaugeMetricFamily("statefun_build_info", "What this server runs (value 1): version, compiled "
                                   "or pure-Python modules, Python, protobuf and its backend, typenames served.",
                                   labels=list(facts))
        family.add_metric(list(facts.values()), 1.0)
        yield family


if __name__ == "__main__":
    # `python -m statefun_workers.build_info`: the facts as JSON; exit status 1 for a pure-Python install
    # that was not asked for (the image build runs it as a check).
    import json

    print(json.dumps(labels()))
    if not compiled() and os.environ.get("STATEFUN_WORKERS_PURE_PYTHON") != "1":
        raise SystemExit("statefun-workers: the pure-Python modules are installed, not the compiled ones")
