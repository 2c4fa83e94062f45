"""Cell: one persisted value during one batch, read lazily and written back once.

The bytes received are decoded on the first read only; a write keeps the Python value (a built-in type's value
normalized at once, see ``types.BuiltinType``); the value is encoded once, when the response is built, and
only if it was written or deleted. storage.py explains what this means for user code.

PERF: setup.py compiles this module with mypyc; every state read and write of a function goes through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ._read import Value
from .types import BuiltinType, codec
from .valuespec import ValueSpec

__all__ = ["UNREAD", "Cell", "CellDeleter", "CellReader", "CellWriter", "StorageBase", "cell_arguments"]

UNREAD: Final[Any] = object()


class Cell:
    """One persisted value during one batch."""

    __slots__ = ("received", "value", "dirty", "typename", "decode", "normalize")

    def __init__(self, received: Value | None, typename: str, decode: Callable[[bytes], Any],
                 normalize: Callable[[Any], Any] | None) -> None:
        self.received = received
        self.value = UNREAD
        self.dirty = False
        self.typename = typename
        self.decode = decode
        self.normalize = normalize

    def get(self) -> Any:
        value = self.value
        if value is not UNREAD:
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


@mypyc_attr(allow_interpreted_subclasses=True)
class StorageBase:
    """Base of the storage class generated for each function (storage.py): the cells of one batch.

    PERF: compiled, so that the property accessors below reach the cells without an attribute lookup.
    """

    __slots__ = ("_cells",)  # NOTE: as plain Python too, so that a typo can not set an attribute

    def __init__(self, cells: list[Cell]) -> None:
        self._cells = cells


class CellReader:
    """The getter of one storage property: the value of the storage's cell ``index``.

    PERF: a compiled callable instead of a Python function, so a state read runs no interpreted frame.
    NOTE: the three accessors repeat their ``index`` slot rather than share a base class: a compiled subclass
    that adds ``__call__`` to a base without one raises "does not support vectorcall" (mypyc 2.4).
    """

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, storage: StorageBase) -> Any:
        cell = storage._cells[self.index]
        value = cell.value
        return cell.get() if value is UNREAD else value


class CellWriter:
    """The setter of one storage property (see :class:`CellReader`)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, storage: StorageBase, value: Any) -> None:
        storage._cells[self.index].set(value)


class CellDeleter:
    """The deleter of one storage property (see :class:`CellReader`)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, storage: StorageBase) -> None:
        storage._cells[self.index].delete()


def cell_arguments(spec: ValueSpec) -> tuple[str, str, Callable[[bytes], Any], Callable[[Any], Any] | None]:
    """Resolve once what every Cell of a spec needs: (state name, typename, decoder, normalizer).

    A built-in type's value is normalized at assignment; a user type's value is kept as assigned and encoded
    at the end of the batch (see the module docstring).
    """
    _, decode = codec(spec.type)
    normalize = spec.type.normalize if isinstance(spec.type, BuiltinType) else None
    return spec.name, spec.type.typename, decode, normalize
