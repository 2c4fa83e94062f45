"""The errors statefun-workers raises, each carrying the HTTP status the server answers with.

::

    StatefunError                          base class; .status, .reason
    ├── ConfigurationError (ValueError)    a bad registration or setting, raised at bind time or start-up
    ├── RequestError                       a request refused before any user code ran
    │   ├── MalformedRequestError (ValueError)   400: the body is not a usable ToFunction
    │   ├── RequestTooLargeError               413: the body is over the configured limit
    │   └── UnknownFunctionError (KeyError)      503: no function is bound to the target's typename
    ├── OverloadedError                    503: the worker holds too many request bytes, or every blocking
    │                                           thread is busy; another worker may take the batch
    ├── WorkerStoppingError                503: the worker stopped a batch at the end of its graceful shutdown
    ├── ClientGoneError                    499: the client went away before the answer (nothing is sent)
    └── FunctionError                      500: the function raised; the whole batch failed
        └── BatchTimeoutError              503: the batch ran past STATEFUN_BATCH_TIMEOUT; no effects

Why these statuses (docs/protocol.md, "How the runtime treats answers"): the runtime's default Netty
transport retries every non-2xx answer for up to its call budget (2 min) and then fails the Flink job; the
OkHttp transport retries only 408/409/420/429/499 and 5xx, and fails the job at once on any other 4xx.

* A malformed body will never parse, whoever retries it: 400 fails fast on OkHttp and is retried on Netty.
* An unknown function type is usually a rolling deploy in progress (the runtime already routes to a function
  that some workers do not have yet), so it must be retried by both transports: 503.
* A failing function fails the whole batch, with no partial effects; the runtime re-sends the batch, so a
  transient failure heals and a deterministic one is loud: 500.

``UnknownFunctionError`` is a ``KeyError`` because the official SDK's ``StatefulFunctions.for_typename`` raised
``KeyError``; code that caught it keeps working.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BatchTimeoutError",
    "ClientGoneError",
    "ConfigurationError",
    "FunctionError",
    "MalformedRequestError",
    "OverloadedError",
    "RequestError",
    "RequestTooLargeError",
    "StatefunError",
    "UnknownFunctionError",
    "WorkerStoppingError",
]


class StatefunError(Exception):
    """Base class of every error raised by statefun-workers itself."""

    status: ClassVar[int] = 500
    """The HTTP status the server answers with when this error ends a request."""
    reason: ClassVar[str] = "error"
    """A short, fixed label for logs and metrics (never user data)."""

    def __init__(self, message: str, *, typename: str | None = None, id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.typename = typename
        """The target function's typename, where known."""
        self.id = id
        """The target address's id, where known."""

    def __str__(self) -> str:
        return self.message


class ConfigurationError(StatefunError, ValueError):
    """A registration or setting that can never work; raised at bind time or start-up, never per request."""

    reason = "configuration"


class RequestError(StatefunError):
    """A request refused before any user code ran."""

    status = 400
    reason = "bad_request"


class MalformedRequestError(RequestError, ValueError):
    """The body is not a ToFunction the worker can act on (unparsable, no target, ...)."""

    status = 400
    reason = "malformed_request"


class RequestTooLargeError(RequestError):
    """The body is larger than the configured limit."""

    status = 413
    reason = "request_too_large"


class UnknownFunctionError(RequestError, KeyError):
    """No function is bound to the target's typename on this worker."""

    status = 503
    reason = "unknown_function"

    def __str__(self) -> str:
        # NOTE: KeyError.__str__ would quote the message; keep it readable.
        return self.message


class OverloadedError(StatefunError):
    """This worker cannot take the batch now (too many request bytes held, every blocking thread busy).

    503, so both runtime transports retry it, usually on another worker or pod.
    """

    status = 503
    reason = "overloaded"


class WorkerStoppingError(StatefunError):
    """The worker's graceful shutdown ran out (``STATEFUN_GRACEFUL_TIMEOUT``) with the batch still running;
    it was stopped and answered with no effects. 503: the runtime retries it on a worker that stays."""

    status = 503
    reason = "worker_stopping"


class ClientGoneError(StatefunError):
    """The client closed the connection before its batch was answered; the batch was stopped.

    Nothing is sent (there is nobody to send to); 499 is what the logs and metrics show, as in nginx.
    """

    status = 499
    reason = "client_disconnected"


class FunctionError(StatefunError):
    """The function raised while handling a batch; the batch fails as a whole.

    The exception the function raised is ``__cause__``. ``message`` names the function, the address, the
    message and the exception's class; the exception's own text, which may hold anything (file paths, keys,
    user data), is ``detail``: logged, and sent to the client only when the server is told to
    (``STATEFUN_EXPOSE_ERRORS``).
    """

    status = 500
    reason = "function_failed"

    def __init__(self, message: str, *, typename: str | None = None, id: str | None = None,
                 invocation: int | None = None, detail: str = "") -> None:
        super().__init__(message, typename=typename, id=id)
        self.invocation = invocation
        """The zero-based position, in its batch, of the message whose handling raised."""
        self.detail = detail
        """The text of the exception the function raised."""

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


class BatchTimeoutError(FunctionError):
    """The batch ran past its deadline (``STATEFUN_BATCH_TIMEOUT``); it was stopped and answered with no
    effects. 503, so the runtime retries it while its call budget lasts."""

    status = 503
    reason = "batch_timeout"
