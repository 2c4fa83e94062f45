"""StatefulFunctions: the registry of functions a worker serves, each bound to a typename.

Everything that can be checked about a function is checked here, once, when it is bound: the typename's form,
the call signature, the state names and types, sync or async. A mistake is a ``ConfigurationError`` at start-up
rather than a failing request (and, through the runtime's retries, a failed Flink job) later.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

from . import _wire
from .cells import cell_arguments
from .errors import ConfigurationError, UnknownFunctionError
from .storage import make_storage_class
from .typenames import check_function_typename, check_state_typename
from .types import codec
from .valuespec import ValueSpec

__all__ = ["StatefulFunction", "StatefulFunctions"]

F = TypeVar("F", bound=Callable[..., Any])


def _is_async(fun: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fun):
        return True
    call = getattr(fun, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _check_signature(typename: str, fun: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):
        return  # some builtins have no signature; they will fail loudly at the first call if wrong
    try:
        signature.bind(None, None)
    except TypeError:
        raise ConfigurationError(
            f"the function bound to {typename!r} must accept two positional arguments (context, message); "
            f"its signature is {signature}") from None


class StatefulFunction:
    """A function bound to a typename, with everything the handler needs prepared once."""

    __slots__ = ("typename", "namespace", "name", "fun", "specs", "is_async", "blocking", "storage_class",
                 "spec_names", "cell_args", "encoders",
                 "value_prefixes", "modify_prefixes", "delete_mutations")

    def __init__(self, typename: str, fun: Callable[..., Any], specs: Sequence[ValueSpec] = (), *,
                 blocking: bool = False) -> None:
        if fun is None:
            raise ValueError("function instance must be provided")
        self.namespace, self.name = check_function_typename(typename)
        self.typename = typename
        if not callable(fun):
            raise ConfigurationError(f"the function bound to {typename!r} is not callable: {fun!r}")
        _check_signature(typename, fun)
        self.fun = fun
        specs = list(specs or ())
        for spec in specs:
            if not isinstance(spec, ValueSpec):
                raise ConfigurationError(f"function {typename!r}: specs must be ValueSpec objects, not {spec!r}")
            check_state_typename(spec.type.typename, spec.name, typename)
        self.specs = tuple(specs)
        self.storage_class = make_storage_class(typename, self.specs)
        self.spec_names = frozenset(spec.name for spec in self.specs)
        self.cell_args = tuple(cell_arguments(spec) for spec in self.specs)
        self.encoders = tuple(codec(spec.type)[0] for spec in self.specs)
        # PERF: the constant parts of each spec's mutations, encoded once (see _dispatch.respond).
        self.value_prefixes = tuple(_wire.value_prefix(spec.type.typename) for spec in self.specs)
        self.modify_prefixes = tuple(_wire.modify_prefix(spec.name) for spec in self.specs)
        self.delete_mutations = tuple(
            _wire.field_bytes(_wire.STATE_MUTATION, _wire.delete_mutation(spec.name)) for spec in self.specs)
        self.is_async = _is_async(fun)
        if blocking and self.is_async:
            raise ConfigurationError(
                f"function {typename!r} is async: it already runs on the event loop without blocking it; "
                f"blocking=True is for sync functions that block (I/O, long computations)")
        self.blocking = bool(blocking)

    def __repr__(self) -> str:
        kind = "async" if self.is_async else "blocking" if self.blocking else "sync"
        return f"StatefulFunction({self.typename!r}, {kind}, specs={list(self.specs)!r})"


class StatefulFunctions:
    """The functions a worker serves, by typename."""

    __slots__ = ("_functions", "_by_type", "_frozen")

    def __init__(self) -> None:
        self._functions: dict[str, StatefulFunction] = {}
        self._by_type: dict[tuple[str, str], StatefulFunction] = {}
        self._frozen = False

    def register(self, typename: str, fun: Callable[..., Any], specs: Sequence[ValueSpec] | None = None, *,
                 blocking: bool = False) -> None:
        """Bind ``fun(context, message)`` to ``typename`` (``<namespace>/<name>``) with its state ``specs``.

        ``blocking=True`` runs the function's batches on a thread pool rather than the event loop, for a sync
        function that blocks (I/O, heavy computation) and would otherwise stall every other request of its
        worker. Binding a typename twice is an error (the official SDK silently kept the last one).
        """
        if fun is None:
            raise ValueError("function instance must be provided")
        if not typename:
            raise ValueError("function typename must be provided")
        self.add(StatefulFunction(typename, fun, specs or (), blocking=blocking))

    def bind(self, typename: str, specs: Sequence[ValueSpec] | None = None, *,
             blocking: bool = False) -> Callable[[F], F]:
        """Decorator form of :meth:`register`; returns the function unchanged.

        For example::

            functions = StatefulFunctions()

            @functions.bind("com.example/greeter", specs=[ValueSpec("seen", IntType)])
            def greeter(context, message):
                ...
        """

        def wrapper(fun: F) -> F:
            self.register(typename, fun, specs, blocking=blocking)
            return fun

        return wrapper

    def add(self, function: StatefulFunction) -> None:
        """Add a prepared function; its typename must not be bound yet."""
        if self._frozen:
            raise ConfigurationError(
                f"cannot bind {function.typename!r}: the registry is frozen (functions are bound at import, "
                f"before the server forks its workers)")
        if function.typename in self._functions:
            raise ConfigurationError(f"function typename {function.typename!r} is bound twice")
        self._functions[function.typename] = function
        self._by_type[(function.namespace, function.name)] = function

    def for_typename(self, typename: str) -> StatefulFunction:
        """The function bound to ``typename``; ``UnknownFunctionError`` (a ``KeyError``) if there is none."""
        function = self._functions.get(typename)
        if function is None:
            raise UnknownFunctionError(f"no function is bound to {typename!r}", typename=typename)
        return function

    @property
    def functions(self) -> Mapping[str, StatefulFunction]:
        """A read-only view of the bound functions, by typename."""
        return MappingProxyType(self._functions)

    def freeze(self) -> None:
        """Forbid further binding: the server freezes the registry before it forks workers."""
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    def __repr__(self) -> str:
        return f"StatefulFunctions({sorted(self._functions)!r})"
