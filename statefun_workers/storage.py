"""Address-scoped storage: the persisted values of one function instance during one batch.

Each ValueSpec of a function becomes a property of a storage class generated once, at bind time, over a
``Cell`` (cells.py) that holds the value for the duration of a batch: decoded on the first read only, and
encoded once when the response is built, only if it was written or deleted.
All invocations of a batch share the same cells, so invocation k sees the writes of invocations before it.

NOTE: the official SDK encoded at every assignment and decoded at every read. Built-in values read back the
same either way (they are normalized at assignment: a FloatType value is rounded to 32 bits at once). For a
user type (JSON, protobuf, simple_type), decoding once means that a read returns the same object for the rest
of the batch, and encoding at the end means that what is saved is that object as it is when the batch ends,
and that a value the type cannot serialize fails the batch at its end rather than at the assignment. Assign a
changed value back to persist it, as with the official SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .cells import CellDeleter, CellReader, CellWriter, StorageBase
from .errors import ConfigurationError
from .valuespec import ValueSpec

__all__ = ["StorageBase", "make_storage_class"]

# Attribute names the generated class uses itself; a ValueSpec may not take them.
RESERVED_NAMES = frozenset({"_cells", "_typename", "__getattr__"})


def _not_a_value_spec(self: StorageBase, name: str) -> Any:
    """``__getattr__`` of every storage class: runs only for a name that is not a property (a typo)."""
    typename = getattr(type(self), "_typename", "")
    raise AttributeError(f"'{name}' is not a registered ValueSpec for the function '{typename}'")


def _property(index: int, name: str) -> property:
    return property(CellReader(index), CellWriter(index), CellDeleter(index), doc=f"The persisted value {name!r}.")


def make_storage_class(typename: str, specs: Sequence[ValueSpec]) -> type:
    """Generate the storage class of one function: one property per spec, nothing else settable."""
    namespace: dict[str, Any] = {"__slots__": (), "_typename": typename, "__getattr__": _not_a_value_spec}
    for index, spec in enumerate(specs):
        if spec.name in namespace or spec.name in RESERVED_NAMES:
            if spec.name in RESERVED_NAMES:
                raise ConfigurationError(f"function {typename!r}: the state name {spec.name!r} is reserved")
            raise ConfigurationError(f"function {typename!r}: duplicate registered value name: {spec.name}")
        namespace[spec.name] = _property(index, spec.name)
    return type(f"Storage[{typename}]", (StorageBase,), namespace)
