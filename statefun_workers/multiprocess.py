"""The multiprocess metrics directory: wiped at master start, dead workers folded into an archive.

prometheus-client's multiprocess mode keeps one file per metric type per pid, and its ``mark_process_dead``
removes only ``live*`` gauge files: counter and histogram files of dead workers stay, because deleting them
would make counters go back (client_python PRs #410/#411). With worker churn (HUP, ``max_requests``,
crashes) they pile up until a scrape reads thousands of files (issues #204, #367, #568).

The fix here keeps counters exact and scrapes flat: when the master reaps a worker (``child_exit``), it adds
the worker's counter, histogram and summary values into ``<type>_archive.db`` (same file format, so the
stock ``MultiProcessCollector`` reads it as one more process) and deletes the worker's files. Both steps
happen under an exclusive ``fcntl.flock`` on ``<dir>/.statefun-metrics.lock``; :class:`LockedCollector`
(every scrape) holds the shared lock while it reads, so a scrape sees either the worker's files or the
archive with them merged in, never both and never neither. The file count stays at (live workers × types) +
a few archives however many workers have come and gone.

Only the master merges, only after the worker is reaped (it can no longer write), and only before gunicorn
spawns the replacement, so pid reuse cannot mix two workers' values. Gauges in non-``live`` modes of dead
workers are left alone, as upstream does (their meaning includes dead processes).

This module knows nothing of the recorder (``statefun_workers.metrics`` imports it, never the reverse): it is
the master's half, and the collector every scrape reads through.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import multiprocess as _upstream
from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

__all__ = [
    "ARCHIVE",
    "LOCK_FILE",
    "WORKER_EXITS_HELP",
    "LockedCollector",
    "child_exit",
    "compact",
    "mark_process_dead",
    "on_exit",
    "on_starting",
    "prepare_directory",
]

LOCK_FILE = ".statefun-metrics.lock"
"""Lock file in the multiprocess directory; not ``*.db``, so collectors never read it."""

ARCHIVE = "archive"
"""The "pid" part of archive file names: ``counter_archive.db``, ``histogram_archive.db``, ...."""

_MERGED_TYPES = ("counter", "histogram", "summary")
"""File types whose values add up over processes, so a dead worker's can be folded into a sum."""

WORKER_EXITS_HELP = "Worker processes that exited (restart, max_requests, crash)."
"""The help of ``statefun_worker_exits``, counted here and declared in ``metrics.FAMILIES``."""

_EXITS_KEY = mmap_key("statefun_worker_exits", "statefun_worker_exits_total", [], [], WORKER_EXITS_HELP)


_temporary_directory: str | None = None
"""The directory prepare_directory() made itself (no path given, no variable set); removed at master exit."""


def prepare_directory(path: str | None = None) -> str:
    """gunicorn ``on_starting``: create and wipe the directory; set ``PROMETHEUS_MULTIPROC_DIR`` for workers.

    Without a path or the variable, a fresh temporary directory is used. A re-exec'd master (USR2,
    ``GUNICORN_PID`` set) keeps the files: the old master's workers are still writing there.
    """
    global _temporary_directory
    if not (path or os.environ.get("PROMETHEUS_MULTIPROC_DIR")):
        path = _temporary_directory = tempfile.mkdtemp(prefix="statefun-metrics-")
    path = path or os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    if "GUNICORN_PID" not in os.environ:
        with _locked(path, fcntl.LOCK_EX):
            for entry in os.listdir(path):
                if entry.endswith((".db", ".db.tmp")):
                    os.unlink(os.path.join(path, entry))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    # NOTE: prometheus-client picks its value class once, at import. If it was imported before the variable
    #   was set, user metrics created later (in workers) would stay in memory and never reach the scrape.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path


# The master's gunicorn hooks; statefun_workers.gunicorn_config calls them from its hooks of the same names.


def on_starting(server: Any) -> None:
    """Master start: a clean directory (see :func:`prepare_directory`)."""
    prepare_directory()


def on_exit(server: Any) -> None:
    """Master exit: remove the metrics directory if it was a temporary one made at start (nothing reads it
    after the pool stops; a directory the user named is left for them)."""
    global _temporary_directory
    if _temporary_directory is not None:
        shutil.rmtree(_temporary_directory, ignore_errors=True)
        _temporary_directory = None


def child_exit(server: Any, worker: Any) -> None:
    """Master, a worker exited for any reason: fold its files into the archive."""
    mark_process_dead(worker.pid)


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """gunicorn ``child_exit``: drop the worker's live gauges and fold its counters into the archive."""
    path = path or os.environ["PROMETHEUS_MULTIPROC_DIR"]
    _upstream.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    compact(path, [pid])


def compact(path: str, pids: Iterable[int | str]) -> None:
    """Add the counter/histogram/summary values of dead ``pids`` to the archives and delete their files.

    Also counts each pid in ``statefun_worker_exits_total``. Holds the exclusive lock throughout.
    """
    pids = list(pids)
    with _locked(path, fcntl.LOCK_EX):
        for typ in _MERGED_TYPES:
            dead = [os.path.join(path, f"{typ}_{pid}.db") for pid in pids]
            dead = [f for f in dead if os.path.exists(f)]
            if not dead and typ != "counter":
                continue
            archive = os.path.join(path, f"{typ}_{ARCHIVE}.db")
            totals: dict[str, float] = {}
            for f in ([archive] if os.path.exists(archive) else []) + dead:
                for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(f):  # type: ignore[no-untyped-call]
                    totals[key] = totals.get(key, 0.0) + value
            if typ == "counter":
                totals[_EXITS_KEY] = totals.get(_EXITS_KEY, 0.0) + len(pids)
            _write(archive, totals)
            for f in dead:
                os.unlink(f)


def _write(path: str, totals: dict[str, float]) -> None:
    """Replace ``path`` with a file holding ``totals`` (write aside, then rename)."""
    tmp = path + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    out = MmapedDict(tmp)  # type: ignore[no-untyped-call]
    try:
        for key, value in totals.items():
            out.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        out.close()  # type: ignore[no-untyped-call]
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: str, operation: int) -> Iterator[None]:
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)  # NOTE: closing the only descriptor releases the flock.


class LockedCollector:
    """``MultiProcessCollector`` that reads under the shared lock, so it never sees a half-done merge."""

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterable[Any]:
        with _locked(self._path, fcntl.LOCK_SH):
            files = glob.glob(os.path.join(self._path, "*.db"))
            # NOTE: a file is empty only in the instant between a worker creating it and sizing it; it holds
            # nothing yet, and reading it would fail. Files only grow, so the check cannot go stale.
            files = [f for f in files if _size(f) > 0]
            return list(_upstream.MultiProcessCollector.merge(files, accumulate=True))  # type: ignore[no-untyped-call]


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:  # a live gauge file removed by mark_process_dead since the glob
        return 0
