"""One-line JSON logs for gunicorn, uvicorn and statefun-workers.

Log collectors (Loki, Cloud Logging, Elasticsearch) split records on newlines, so a multi-line traceback
becomes a dozen unrelated records. Every record here is one JSON object on one line, the traceback included
as a string field, with the fields a collector indexes: time, level, logger, pid, message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["JsonFormatter", "LOGGER_NAME", "LogThrottle", "logconfig_dict"]

LOGGER_NAME = "statefun_workers"
"""The parent logger of everything this package logs."""

# Attributes every LogRecord has; anything else on a record was passed with ``extra=`` and is emitted too.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime",
                                                                                  "color_message"}


# gunicorn and uvicorn log everything, start-up lines included, to loggers named "<server>.error"; a search
# for "error" in the logs should not match every line, so these go out as the server's name alone.
_LOGGER_NAMES = {"gunicorn.error": "gunicorn", "uvicorn.error": "uvicorn"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ``{"ts", "level", "logger", "pid", "msg", ...extra, "exc"}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": _LOGGER_NAMES.get(record.name, record.name),
            "pid": record.process,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class LogThrottle:
    """Whether to log something a client can make happen again and again: at most once per ``interval``
    seconds for one key, with the number of times it was not logged in between.

    A hostile or broken client can cause a refusal or a failure with every request it sends; one log line
    (or traceback) each would let it fill the disk or the log pipeline at its own rate. Keys are bounded too
    (``max_keys``, then forgotten all at once), so the throttle's own memory has a ceiling.
    """

    __slots__ = ("interval", "max_keys", "_clock", "_seen")

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 4096) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}

    def check(self, key: Hashable) -> tuple[bool, int]:
        """(log it now?, times it was not logged since it last was)."""
        now = self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False, seen[1] + 1
        if len(self._seen) >= self.max_keys:
            self._seen.clear()
        self._seen[key] = (now, 0)
        return True, 0 if seen is None else seen[1]


class SocketDoubleCloseFilter(logging.Filter):
    """Drops gunicorn's "Error while closing socket [Errno 9] Bad file descriptor" from a stopping worker.

    uvicorn closes the listening sockets when it shuts down, then gunicorn's worker closes them again and logs
    the EBADF at info level, once per worker and socket, on every clean stop: noise that reads like a fault.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Error while closing socket %s" and "Errno 9]" in str(record.args))


def logconfig_dict(level: str = "info") -> dict[str, Any]:
    """A ``dictConfig`` dict (gunicorn's ``logconfig_dict``) sending every log to stderr as JSON.

    gunicorn's access log stays off: one line per batch would cost more than the batch itself, and the
    metrics already count requests.
    """
    level = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    # NOTE: the named loggers hold the handler themselves and do not propagate, because uvicorn-worker copies
    #   gunicorn.error's handlers onto uvicorn.error and turns its propagation off.
    own = {"level": level, "handlers": ["stderr"], "propagate": False}
    quiet = {"level": "WARNING", "handlers": [], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "filters": {"socket_double_close": {"()": f"{__name__}.SocketDoubleCloseFilter"}},
        "handlers": {"stderr": handler},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": dict(own, filters=["socket_double_close"]),
            "gunicorn.access": dict(quiet),
            "uvicorn.error": dict(own),
            "uvicorn.access": dict(quiet),
            LOGGER_NAME: dict(own),
        },
    }
