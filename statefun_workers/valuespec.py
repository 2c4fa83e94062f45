"""ValueSpec: the declaration of one persisted value of a function (name, type, expiration)."""

from __future__ import annotations

from datetime import timedelta
from keyword import iskeyword

from . import _wire
from .errors import ConfigurationError
from .types import Type

__all__ = ["ValueSpec"]

# FromFunction.ExpirationSpec.ExpireMode
_NONE, _AFTER_WRITE, _AFTER_INVOKE = 0, 1, 2


class ValueSpec:
    """A persisted value: a lower-case identifier ``name``, its ``type``, and at most one expiration.

    ``expire_after_call`` expires the value when the function was not called for that long, and
    ``expire_after_write`` when it was not written for that long. Durations count whole milliseconds (the
    remainder is dropped, as in the official SDK); a zero duration means no expiration.
    """

    __slots__ = ("name", "type", "duration", "after_call", "after_write", "_missing_spec")

    def __init__(self, name: str, type: Type, expire_after_call: timedelta | None = None,
                 expire_after_write: timedelta | None = None) -> None:
        if not name:
            raise ValueError("name can not be missing.")
        if not name.isidentifier():
            raise ValueError(
                f"invalid name {name}. A spec name can only contain letters (a-z), digits (0-9) and "
                f"underscores (_), and cannot start with a digit or contain spaces.")
        if iskeyword(name):
            raise ValueError(f"invalid spec name {name}: a Python keyword cannot be an attribute of "
                             f"context.storage.")
        if not name.islower():
            raise ValueError(f"Only lower case names are allowed, {name} is given.")
        if not type:
            raise ValueError("type can not be missing.")
        if not isinstance(type, Type):
            raise TypeError("type is not a StateFun type.")
        if expire_after_call and expire_after_write:
            raise ValueError("Either expire_after_call or expire_after_write can be set, but not both.")
        self.name = name
        self.type = type
        self.after_call = bool(expire_after_call)
        self.after_write = bool(expire_after_write) and not self.after_call
        ttl = expire_after_call or expire_after_write
        self.duration = int(ttl.total_seconds() * 1000.0) if ttl else 0
        if self.duration < 0:
            raise ConfigurationError(f"spec {name}: an expiration must not be negative, got {ttl}")
        mode = _AFTER_INVOKE if self.after_call else _AFTER_WRITE if self.after_write else _NONE
        # PERF: the answer to a request that lacks this state is the same every time; encode it once.
        self._missing_spec = _wire.persisted_value_spec(
            name, _wire.expiration_spec(mode, self.duration if mode else 0), type.typename)

    def __repr__(self) -> str:
        ttl = (f", expire_after_call={self.duration}ms" if self.after_call
               else f", expire_after_write={self.duration}ms" if self.after_write else "")
        return f"ValueSpec({self.name!r}, {self.type!r}{ttl})"
