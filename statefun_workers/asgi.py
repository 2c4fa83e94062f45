"""The ASGI application of an installed package: the registries ``STATEFUN_FUNCTIONS`` names.

Serve it with the packaged gunicorn configuration, from any directory::

    STATEFUN_FUNCTIONS=mymodule:functions \\
        gunicorn -c python:statefun_workers.gunicorn_config statefun_workers.asgi:application

(``statefun-workers serve mymodule:functions`` runs exactly this). Importing the module reads the settings,
imports, merges and freezes the registries and builds the app; with ``preload_app`` that happens once, in the
master, before the workers fork. A failure is one log line and exit status 1 (``statefun_workers.startup``).
"""

from __future__ import annotations

from statefun_workers.loading import load_functions
from statefun_workers.server import create_app
from statefun_workers.settings import Settings
from statefun_workers.startup import reported_start_errors

__all__ = ["application"]

with reported_start_errors():
    _settings = Settings.from_env()
    application = create_app(load_functions(_settings.functions), settings=_settings)
