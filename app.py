"""The ASGI application gunicorn serves from the repository: ``gunicorn -c gunicorn.conf.py app``.

It serves the registries named by ``STATEFUN_FUNCTIONS`` (default: the example functions in ``examples/``);
the installed package's ``statefun_workers.asgi`` does the work (and says why on a failure to start).
"""

from statefun_workers.asgi import application

__all__ = ["application"]
