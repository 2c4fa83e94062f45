"""``python -m statefun_workers ...``: the ``statefun-workers`` command, for an environment without its script."""

from statefun_workers.cli import main

main()
