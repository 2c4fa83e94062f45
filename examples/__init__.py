"""The example functions served when ``STATEFUN_FUNCTIONS`` is unset (see README.md in this folder).

``functions`` merges the registries of :mod:`examples.greeter` and :mod:`examples.shopping_cart`; serve one of
them alone with ``STATEFUN_FUNCTIONS=examples.greeter``.
"""

from statefun_workers import StatefulFunctions

from . import greeter, shopping_cart

functions = StatefulFunctions()
for _registry in (greeter.functions, shopping_cart.functions):
    for _function in _registry.functions.values():
        functions.add(_function)
