"""Typename rules: the lenient split the official SDK applies to targets, and the strict form the runtime needs.

The runtime parses the typenames of function types and of state types with ``TypeName.parseFrom``, which splits
on ``/`` and demands exactly two parts (docs/protocol.md, "Typenames"); a typename it cannot parse fails
the Flink job when the state is registered or the module is loaded. So what is bound, and what is declared as a
state's type, is checked here at bind time. The targets of outgoing messages and egresses keep the official SDK's
rule (split at the last ``/``), so what went on the wire before still goes on the wire unchanged.
"""

from __future__ import annotations

from .errors import ConfigurationError

__all__ = ["check_function_typename", "check_state_typename", "parse_typename"]


def parse_typename(typename: str) -> tuple[str, str]:
    """Split ``namespace/name`` at the last ``/``; both parts must be non-empty (the official SDK's rule)."""
    if not isinstance(typename, str):
        raise TypeError(f"a typename must be a str of the form <namespace>/<name>, not {type(typename).__name__}")
    namespace, slash, name = typename.rpartition("/")
    if not slash:
        raise ValueError(f"typename {typename!r} must be of the form <namespace>/<name>")
    if not namespace:
        raise ValueError(f"typename {typename!r} has an empty namespace")
    if not name:
        raise ValueError(f"typename {typename!r} has an empty name")
    return namespace, name


def check_function_typename(typename: object) -> tuple[str, str]:
    """Validate a typename to bind a function to; return (namespace, name)."""
    if not isinstance(typename, str) or not typename:
        raise ConfigurationError(f"a function typename must be a non-empty str, not {typename!r}")
    parts = typename.split("/")
    if len(parts) != 2:
        raise ConfigurationError(
            f"function typename {typename!r} must contain exactly one '/' (<namespace>/<name>): the StateFun "
            f"runtime cannot route to any other form")
    namespace, name = parts
    if not namespace or not name:
        raise ConfigurationError(
            f"function typename {typename!r} needs a non-empty namespace and name (<namespace>/<name>)")
    return namespace, name


def check_state_typename(typename: str, state_name: str, function_typename: str) -> None:
    """Validate the typename of a state's type, which the runtime parses when it registers the state."""
    parts = typename.split("/")
    if len(parts) != 2 or not parts[1]:
        raise ConfigurationError(
            f"state {state_name!r} of function {function_typename!r} has type {typename!r}: the StateFun runtime "
            f"registers state types only as <namespace>/<name> with exactly one '/' and a non-empty name, and "
            f"would fail the job on this one")
