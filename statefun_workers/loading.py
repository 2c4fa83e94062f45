"""Find the functions to serve from ``STATEFUN_FUNCTIONS``.

The value is a comma-separated list of ``module`` or ``module:attribute``, each naming a
``StatefulFunctions``; a bare ``module`` means ``module:functions``. Several registries are merged into one,
and a typename bound by two of them is a start-up error naming both, because which one would win is an
accident of ordering that nobody should have to debug in production.
"""

from __future__ import annotations

import importlib

from statefun_workers import StatefulFunctions
from statefun_workers.errors import ConfigurationError

__all__ = ["DEFAULT_ATTRIBUTE", "load_functions", "parse_sources"]

DEFAULT_ATTRIBUTE = "functions"


def parse_sources(spec: str) -> list[tuple[str, str]]:
    """Split ``STATEFUN_FUNCTIONS`` into ``(module, attribute)`` pairs."""
    sources: list[tuple[str, str]] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        module, _, attribute = item.partition(":")
        module, attribute = module.strip(), (attribute.strip() or DEFAULT_ATTRIBUTE)
        if not module or not all(part.isidentifier() for part in module.split(".")) \
                or not all(part.isidentifier() for part in attribute.split(".")):
            raise ConfigurationError(
                f"STATEFUN_FUNCTIONS: {item!r} is not 'module' or 'module:attribute'"
                " (e.g. 'myapp.fns:functions')")
        sources.append((module, attribute))
    if not sources:
        raise ConfigurationError("STATEFUN_FUNCTIONS names no module")
    return sources


def _resolve(module_name: str, attribute: str) -> StatefulFunctions:
    source = f"{module_name}:{attribute}"
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as ex:
        # NOTE: only "this very module is missing" gets the friendly message; an ImportError raised *inside*
        #   the user's module keeps its traceback (chained), since that is the bug to fix.
        raise ConfigurationError(
            f"STATEFUN_FUNCTIONS: cannot import {module_name!r} ({source}): {ex}") from ex
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(
                f"STATEFUN_FUNCTIONS: module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(obj, StatefulFunctions):
        raise ConfigurationError(
            f"STATEFUN_FUNCTIONS: {source} is a {type(obj).__name__},"
            " not a statefun_workers.StatefulFunctions")
    return obj


def load_functions(spec: str) -> StatefulFunctions:
    """Import every registry named by ``spec`` and merge them into one, frozen, registry.

    Raises:
        ConfigurationError: a source cannot be imported or is not a ``StatefulFunctions``, or two sources bind
            the same typename.
    """
    merged = StatefulFunctions()
    bound_by: dict[str, str] = {}
    merged_ids: set[int] = set()
    for module_name, attribute in parse_sources(spec):
        source = f"{module_name}:{attribute}"
        registry = _resolve(module_name, attribute)
        if id(registry) in merged_ids:
            continue  # the same registry named twice (or re-exported): harmless
        merged_ids.add(id(registry))
        for typename, function in registry.functions.items():
            if typename in bound_by:
                raise ConfigurationError(
                    f"STATEFUN_FUNCTIONS: typename {typename!r} is bound by both {bound_by[typename]}"
                    f" and {source}")
            bound_by[typename] = source
            merged.add(function)
    merged.freeze()
    return merged
