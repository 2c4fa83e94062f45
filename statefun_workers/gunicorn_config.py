"""gunicorn settings and hooks for serving statefun-workers.

Use it from the repository (``gunicorn -c gunicorn.conf.py app``) or from an installed package (what
``statefun-workers serve`` runs)::

    STATEFUN_FUNCTIONS=your_module:functions \
        gunicorn -c python:statefun_workers.gunicorn_config statefun_workers.asgi:application

Every setting comes from the environment through :class:`statefun_workers.settings.Settings` (names and
defaults in ``docs/contracts.md``). Choices, and why:

* one worker per usable CPU (``WEB_CONCURRENCY``, else the cgroup CPU quota, else the CPUs this process may
  run on): a worker is an event loop doing CPU-bound protobuf work, so more workers than cores only adds
  switching;
* the app is preloaded and its registry frozen in the master, and ``gc.freeze()`` runs before the first fork,
  so workers share the loaded code pages instead of copying them on first garbage collection;
* the young generation is collected every ``STATEFUN_GC_THRESHOLD`` (20,000) container allocations instead
  of 700: a request's JSON state is freed by reference counting when its batch ends, and at 700 the collector
  traversed a 64 KB document (1,300 dicts) twice while it was alive;
* heartbeat files live in ``/dev/shm``: on a disk-backed ``/tmp`` a slow ``utime`` can get a healthy worker
  killed for a missed heartbeat;
* keep-alive (20 s) outlasts the runtime's connection pool TTL (15 s + up to 3 s), so the runtime, not the
  server, closes idle pooled connections and never sends a batch on a connection being closed;
* ``graceful_timeout`` = drain + ``STATEFUN_GRACEFUL_TIMEOUT`` + a margin: the master must not SIGKILL a
  worker that is still draining or finishing batches (the worker enforces the inner deadlines itself).

The hooks keep the Prometheus metrics: the master's directory bookkeeping in ``statefun_workers.multiprocess``,
each worker's recorder in ``statefun_workers.metrics``; see ``docs/contracts.md``.
"""

from __future__ import annotations

import gc as _gc
import math as _math
import os as _os
from typing import Any as _Any

from statefun_workers import build_info as _build_info
from statefun_workers import metrics as _metrics
from statefun_workers import multiprocess as _multiprocess
from statefun_workers import tls as _tls
from statefun_workers import upstream as _upstream
from statefun_workers.cpu import available_cpus as _available_cpus
from statefun_workers.logs import logconfig_dict as _logconfig_dict
from statefun_workers.settings import Settings as _Settings
from statefun_workers.startup import reported_start_errors as _reported_start_errors

# NOTE: gunicorn reads every global of this module whose name is a setting (with `python:`), and `import *`
#   copies `__all__`; helpers are therefore `_`-prefixed.
__all__ = [
    "accesslog", "bind", "child_exit", "control_socket_disable", "graceful_timeout", "keepalive",
    "logconfig_dict", "loglevel", "max_requests", "max_requests_jitter", "on_exit", "on_starting", "post_fork",
    "preload_app", "proc_name", "timeout", "when_ready", "worker_class", "worker_exit", "worker_tmp_dir",
    "workers",
]

_SHUTDOWN_MARGIN_SECONDS = 2
"""Time the master adds after drain + graceful, so the worker can cancel leftovers and exit on its own."""

with _reported_start_errors():  # a bad variable or TLS file: one log line and exit 1, not a traceback
    _settings = _Settings.from_env()
    _tls.server_context(_settings)  # loaded once here, so a bad file stops the master before any fork
    _upstream.check()  # an upstream release that moved an internal stops the master, naming it

bind = [f"0.0.0.0:{_settings.port}"]
if _settings.admin_port is not None:
    # The plain probes-and-metrics port (statefun_workers/tls.py); a -b on the command line replaces both.
    bind.append(f"0.0.0.0:{_settings.admin_port}")
workers = _settings.web_concurrency or _available_cpus()
worker_class = "statefun_workers.worker.StatefunWorker"
preload_app = True
worker_tmp_dir = "/dev/shm" if _os.path.isdir("/dev/shm") else None
keepalive = _math.ceil(_settings.keepalive)
timeout = _math.ceil(_settings.timeout)
graceful_timeout = _math.ceil(_settings.drain_seconds + _settings.graceful_timeout) + _SHUTDOWN_MARGIN_SECONDS
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
loglevel = _settings.log_level
logconfig_dict = _logconfig_dict(_settings.log_level)
accesslog = None
proc_name = "statefun-workers"
# The control socket (gunicorn 25.1+) defaults to one path per user: two servers on a machine would share it.
control_socket_disable = True


def on_starting(server: _Any) -> None:
    """Master, before the app loads: wipe the Prometheus multiprocess directory of a previous run."""
    _multiprocess.on_starting(server)


def when_ready(server: _Any) -> None:
    """Master, app loaded, before the first fork: log what runs (version, compiled, typenames), move what
    exists now out of the GC's reach, so the pages the workers share are not copied when a collection touches
    their object headers, and set the young generation's threshold the workers inherit
    (``STATEFUN_GC_THRESHOLD``), so a batch's decoded state is mostly freed before a collection sees it."""
    _build_info.log_start()
    _gc.freeze()
    _gc.set_threshold(_settings.gc_threshold, *_gc.get_threshold()[1:])


def post_fork(server: _Any, worker: _Any) -> None:
    """Worker, just after fork: count it as live in the metrics and start flushing its totals."""
    _metrics.worker_started()


def worker_exit(server: _Any, worker: _Any) -> None:
    """Worker, as it exits normally: flush its last metrics."""
    _metrics.worker_exiting()


def on_exit(server: _Any) -> None:
    """Master, stopping: remove a temporary metrics directory it made at start."""
    _multiprocess.on_exit(server)


def child_exit(server: _Any, worker: _Any) -> None:
    """Master, after a worker exited for any reason (SIGKILL included): archive its metrics."""
    _multiprocess.child_exit(server, worker)
