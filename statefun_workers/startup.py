"""Start-up failures as one log line: what went wrong, where, and what to try; the traceback at debug level.

A server that cannot start is read by someone looking at ``kubectl logs`` or a terminal. A 50-line traceback
in plain text (not the JSON the collector expects) buries the cause, and a module missing from the search path
gets no hint at all. :func:`reported_start_errors` turns any exception during start-up into one JSON line
(logger ``statefun_workers.start``: ``msg`` = the cause, ``hint`` = what to try) and exits with status 1.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import logging.config
import os
import sys
import traceback
from collections.abc import Iterator

from .errors import ConfigurationError
from .logs import LOGGER_NAME, logconfig_dict
from .upstream import UpstreamError

__all__ = ["describe", "reported_start_errors"]

log = logging.getLogger(f"{LOGGER_NAME}.start")

_IMPORT_MACHINERY = os.path.dirname(importlib.__file__) + os.sep
"""Frames in here only say that an import failed, not where."""
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _where(ex: BaseException, skip: tuple[str, ...] = ()) -> str:
    """`` (at file:line)``: the innermost frame of a source file (not the import machinery's) that raised."""
    frames = [f for f in traceback.extract_tb(ex.__traceback__)
              if not f.filename.startswith(("<", _IMPORT_MACHINERY, *skip))]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def describe(ex: BaseException, argument: bool = False) -> tuple[str, str]:
    """(the cause in one line, a hint) for an exception raised while starting; ``argument``: it was raised
    loading a command's ``MODULE:ATTR`` argument, not the environment's settings."""
    cause = str(ex) if isinstance(ex, (ConfigurationError, UpstreamError)) else f"{type(ex).__name__}: {ex}{_where(ex)}"
    missing = ex.__cause__ if isinstance(ex.__cause__, ImportError) else ex if isinstance(ex, ImportError) else None
    if missing is not None:
        if isinstance(ex, ConfigurationError) and missing.__traceback__ is not None:
            cause += _where(missing, skip=(_PACKAGE,))  # where the user's module imports what is missing
        path = list(dict.fromkeys(entry or os.getcwd() for entry in sys.path))
        name = repr(missing.name) if missing.name else "the module"
        hint = (f"install {name} or put the folder holding it on PYTHONPATH (now "
                f"{os.environ.get('PYTHONPATH', 'unset')!r}); the module search path is {os.pathsep.join(path)}")
    elif isinstance(ex, UpstreamError):
        hint = ("install the versions statefun-workers requires (`pip install statefun-workers` picks them; "
                "`pip check` names a conflict)")
    elif isinstance(ex, ConfigurationError) and argument:
        hint = "fix the MODULE:ATTR argument (a module on the search path, and a StatefulFunctions in it)"
    elif isinstance(ex, ConfigurationError):
        hint = "fix the setting named above (the README's \"Serving\" lists every variable and its default)"
    else:
        hint = "the error was raised by the code named above; STATEFUN_LOG_LEVEL=debug logs its traceback"
    return cause, hint


def _ensure_logging() -> None:
    """The JSON log configuration, if nothing configured logging yet (a CLI, gunicorn reading its config)."""
    if not logging.getLogger(LOGGER_NAME).hasHandlers():
        level = os.environ.get("STATEFUN_LOG_LEVEL", "info").strip().lower()
        logging.config.dictConfig(logconfig_dict(level if level in ("debug", "info", "warning", "error") else "info"))


@contextlib.contextmanager
def reported_start_errors(command: str | None = None, argument: bool = False) -> Iterator[None]:
    """Run a start-up step; on any exception log the one line (traceback at debug) and exit with status 1.
    ``command``: a CLI command other than ``serve`` (``check``); ``argument``: the step loads its
    ``MODULE:ATTR`` argument."""
    try:
        yield
    except Exception as ex:
        _ensure_logging()
        cause, hint = describe(ex, argument)
        log.error("cannot %s: %s", command or "start", cause, extra={"hint": hint})
        log.debug("traceback of the start-up failure", exc_info=ex)
        raise SystemExit(1) from None
