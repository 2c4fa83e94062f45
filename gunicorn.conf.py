# gunicorn's configuration for `gunicorn -c gunicorn.conf.py app`. Every setting and hook lives in the package
# (statefun_workers/gunicorn_config.py) so that an installed package serves the same way:
#     statefun-workers serve your_module:functions
# which runs gunicorn -c python:statefun_workers.gunicorn_config statefun_workers.asgi:application.
# Settings come from the environment (PORT, WEB_CONCURRENCY, STATEFUN_*; see docs/server.md).
from statefun_workers.gunicorn_config import *  # noqa: F403
