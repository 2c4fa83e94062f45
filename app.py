"""The ASGI application gunicorn serves: ``gunicorn -c gunicorn.conf.py app``.

It serves the registries named by ``STATEFUN_FUNCTIONS`` (default: the example functions in ``examples/``).
Importing it loads, merges and freezes them; with ``preload_app`` that happens once, in the master, before
fork.
"""

from statefun_workers.loading import load_functions
from statefun_workers.server import create_app
from statefun_workers.settings import Settings

settings = Settings.from_env()
application = create_app(load_functions(settings.functions), settings=settings)
