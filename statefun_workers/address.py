"""SdkAddress: the address of a function instance as user code sees it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SdkAddress"]


@dataclass(frozen=True)
class SdkAddress:
    """A function instance: ``namespace``/``name`` is its function type, ``id`` the instance.

    ``typename`` is ``"namespace/name"``. Same fields, equality and repr as the official SDK's.
    """

    namespace: str
    name: str
    id: str
    typename: str
