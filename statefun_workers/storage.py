"""Address-scoped storage: the persisted values of one function instance during one batch.

Each ValueSpec of a function becomes a property of a storage class generated once, at bind time. A ``Cell``
holds one value for the duration of a batch: the bytes received are decoded on the first read only, writes keep
the Python value, and the value is encoded once when the response is built, only if it was written or deleted.
All invocations of a batch share the same cells, so invocation k sees the writes of invocations before it.

NOTE: the official SDK encoded at every assignment and decoded at every read. Built-in values read back the
same either way (they are normalized at assignment: a FloatType value is rounded to 32 bits at once). For a
user type (JSON, protobuf, simple_type), decoding once means that a read returns the same object for the rest
of the batch, and encoding at the end means that what is saved is that object as it is when the batch ends,
and that a value the type cannot serialize fails the batch at its end rather than at the assignment. Assign a
changed value back to persist it, as with the official SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._proto.request_reply_pb2 import TypedValue
from .errors import ConfigurationError
from .types import BuiltinType, codec
from .valuespec import ValueSpec

__all__ = ["Cell", "make_storage_class"]

_UNREAD: Any = object()


class Cell:
    """One persisted value during one batch."""

    __slots__ = ("received", "value", "dirty", "typename", "decode", "normalize")

    def __init__(self, received: TypedValue | None, typename: str, decode: Callable[[bytes], Any],
                 normalize: Callable[[Any], Any] | None) -> None:
        self.received = received
        self.value = _UNREAD
        self.dirty = False
        self.typename = typename
        self.decode = decode
        self.normalize = normalize

    def get(self) -> Any:
        value = self.value
        if value is not _UNREAD:
            return value
        received = self.received
        if received is None or not received.has_value:
            value = None
        else:
            if received.typename != self.typename:
                raise TypeError(f"Type mismatch: the runtime sent type {received.typename}, yet the value is "
                                f"declared locally as {self.typename}")
            value = self.decode(received.value)
        self.value = value
        return value

    def set(self, value: Any) -> None:
        if value is None:
            raise ValueError("provided value must not be None. To delete a value, please use del.")
        normalize = self.normalize
        self.value = value if normalize is None else normalize(value)
        self.dirty = True

    def delete(self) -> None:
        self.value = None
        self.dirty = True


# Attribute names the generated class uses itself; a ValueSpec may not take them.
RESERVED_NAMES = frozenset({"_cells", "_typename"})


class StorageBase:
    """Base of the storage class generated for each function: its cells, and a clear error for a typo."""

    __slots__ = ("_cells",)
    _typename = ""

    def __init__(self, cells: list[Cell]) -> None:
        self._cells = cells

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"'{name}' is not a registered ValueSpec for the function '{self._typename}'")


def _property(index: int, name: str) -> property:
    def fget(self: StorageBase) -> Any:
        # PERF: a value already read or written is returned without calling Cell.get().
        cell = self._cells[index]
        value = cell.value
        return cell.get() if value is _UNREAD else value

    def fset(self: StorageBase, value: Any) -> None:
        self._cells[index].set(value)

    def fdel(self: StorageBase) -> None:
        self._cells[index].delete()

    return property(fget, fset, fdel, doc=f"The persisted value {name!r}.")


def make_storage_class(typename: str, specs: Sequence[ValueSpec]) -> type:
    """Generate the storage class of one function: one property per spec, nothing else settable."""
    namespace: dict[str, Any] = {"__slots__": (), "_typename": typename}
    for index, spec in enumerate(specs):
        if spec.name in namespace or spec.name in RESERVED_NAMES:
            if spec.name in RESERVED_NAMES:
                raise ConfigurationError(f"function {typename!r}: the state name {spec.name!r} is reserved")
            raise ConfigurationError(f"function {typename!r}: duplicate registered value name: {spec.name}")
        namespace[spec.name] = _property(index, spec.name)
    return type(f"Storage[{typename}]", (StorageBase,), namespace)


def cell_arguments(spec: ValueSpec) -> tuple[str, str, Callable[[bytes], Any], Callable[[Any], Any] | None]:
    """Resolve once what every Cell of a spec needs: (state name, typename, decoder, normalizer).

    A built-in type's value is normalized at assignment; a user type's value is kept as assigned and encoded
    at the end of the batch (see the module docstring).
    """
    _, decode = codec(spec.type)
    normalize = spec.type.normalize if isinstance(spec.type, BuiltinType) else None
    return spec.name, spec.type.typename, decode, normalize
