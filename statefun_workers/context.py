"""Context: what a function can see and do while it handles one message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from mypy_extensions import mypyc_attr

from . import _wire
from ._read import Address, Invocation
from .address import SdkAddress
from .messages import EgressMessage, Message
from .typenames import parse_typename

__all__ = ["Context"]

_UNSET: Final[Any] = object()


def _address_or_none(address: Address | None) -> SdkAddress | None:
    if address is None:
        return None
    namespace, name, id = address.namespace, address.type, address.id
    if not namespace and not name and not id:
        return None
    return SdkAddress(namespace, name, id, f"{namespace}/{name}")


_TARGETS: Final[dict[str, bytes]] = {}
_TARGETS_MAX: Final = 4096


def encoded_target(typename: str) -> bytes:
    """The first two fields of an Address (or of an EgressMessage, which numbers them alike) for a typename.

    Raises ValueError for a typename the runtime cannot route, at the call that names it.
    PERF: cached, since a function sends to a handful of typenames.
    """
    prefix = _TARGETS.get(typename)
    if prefix is None:
        namespace, name = parse_typename(typename)
        prefix = _wire.optional_str(b"\x0a", namespace) + _wire.optional_str(b"\x12", name)
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        _TARGETS[typename] = prefix
    return prefix


@mypyc_attr(allow_interpreted_subclasses=True)
class Context:
    """The function's view of the batch it is handling.

    ``address`` is the instance being invoked, ``caller`` the sender of the current message (``None`` for an
    ingress), ``storage`` the instance's persisted values. Everything sent is buffered and reaches the runtime
    only if the whole batch succeeds.

    The effect methods check their arguments at the call, where the mistake is: the runtime would otherwise
    fail the whole Flink job when it applies the response (docs/protocol.md, edge cases 19 and 21).
    """

    __slots__ = ("_namespace", "_name", "_id", "_address", "_storage", "_invocation", "_caller",
                 "messages", "delayed", "egresses")

    def __init__(self, namespace: str = "", name: str = "", id: str = "", storage: Any = None) -> None:
        # NOTE: defaults, so that a test double can subclass Context as it could the official abstract one.
        self._namespace = namespace
        self._name = name
        self._id = id
        self._address: SdkAddress | None = None
        self._storage = storage
        self._invocation: Invocation | None = None
        self._caller: Any = None
        self.messages: list[tuple[bytes, Message]] = []
        """Messages sent (encoded target typename, message), in call order."""
        self.delayed: list[tuple[int, bytes, Message | None, str | None]] = []
        """Delayed sends (delay ms, encoded target typename, message, token) and cancellations
        (-1, b"", None, token), in call order."""
        self.egresses: list[tuple[bytes, EgressMessage]] = []
        """Egress records (encoded egress typename, record), in call order."""

    @property
    def address(self) -> SdkAddress:
        """The address of the function instance being invoked."""
        address = self._address
        if address is None:
            address = self._address = SdkAddress(
                self._namespace, self._name, self._id, f"{self._namespace}/{self._name}")
        return address

    @property
    def storage(self) -> Any:
        """The persisted values of this instance, one attribute per ValueSpec."""
        return self._storage

    @property
    def caller(self) -> SdkAddress | None:
        """The sender of the current message, or ``None`` when there is none (an ingress)."""
        caller = self._caller
        if caller is _UNSET:
            invocation = self._invocation
            caller = self._caller = None if invocation is None else _address_or_none(invocation.caller)
        return caller  # type: ignore[no-any-return]

    def _enter(self, invocation: Invocation) -> None:
        """Move on to the next message of the batch (the caller changes per message)."""
        self._invocation = invocation
        self._caller = _UNSET

    # NOTE: the effect methods take Any and check their arguments themselves, with messages that say what to
    #   do instead: compiled by mypyc, a narrower annotation would be enforced first, with a generic TypeError.
    def send(self, message: Any) -> None:
        """Send a message to a function."""
        if not isinstance(message, Message):
            _reject_message(message, "send", "send_egress")
        self.messages.append((encoded_target(message.target_typename), message))

    def send_after(self, duration: Any, message: Any, cancellation_token: Any = "") -> None:
        """Send a message after ``duration`` (whole milliseconds); a non-empty token lets you cancel it."""
        if not isinstance(message, Message):
            _reject_message(message, "send_after", "send_egress")
        if not isinstance(duration, timedelta):
            raise TypeError(f"duration must be a datetime.timedelta, not {type(duration).__name__}")
        if duration < timedelta(0):
            raise ValueError(f"a delay must not be negative, got {duration}: the runtime would fail the job")
        if cancellation_token is not None and not isinstance(cancellation_token, str):
            raise TypeError(f"cancellation_token must be a str, not {type(cancellation_token).__name__}")
        self.delayed.append((int(duration.total_seconds() * 1000.0), encoded_target(message.target_typename),
                             message, cancellation_token))

    def cancel_delayed_message(self, cancellation_token: Any) -> None:
        """Cancel a message sent with ``send_after`` and this token; a no-op if it was already delivered."""
        if not isinstance(cancellation_token, str):
            raise TypeError(f"cancellation_token must be a str, not {type(cancellation_token).__name__}")
        if not cancellation_token:
            raise ValueError("cancel_delayed_message needs a non-empty cancellation token: the runtime fails "
                             "the job on a cancellation without one")
        self.delayed.append((-1, b"", None, cancellation_token))

    def send_egress(self, message: Any) -> None:
        """Send a record to an egress."""
        if not isinstance(message, EgressMessage):
            if isinstance(message, Message):
                raise TypeError("send_egress takes an EgressMessage; a Message to a function goes to send()")
            raise TypeError(f"send_egress takes an EgressMessage, not {type(message).__name__}")
        self.egresses.append((encoded_target(message.typename), message))


def _reject_message(message: object, method: str, other: str) -> None:
    if isinstance(message, EgressMessage):
        raise TypeError(f"{method} takes a Message to a function; an EgressMessage goes to context.{other}()")
    raise TypeError(f"{method} takes a Message (see message_builder), not {type(message).__name__}")
