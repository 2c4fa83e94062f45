"""Fixtures of the shipping tests: the project as a user gets it, outside this checkout.

``clone`` is a copy of the checkout's files as git sees them (tracked and untracked, not ignored: what a
clone of this working tree would hold, without virtualenvs, build output or compiled modules). ``dist`` is
``python -m build`` of it: an sdist, and a wheel built from that sdist alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .commands import clean_env, copy_checkout, run


@pytest.fixture(scope="session")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="session")
def dist(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel from the unpacked sdist (build's default)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(clone)], env=clean_env())
    return out


USER_MODULE = '''\
"""A user's functions, outside any package: served from PYTHONPATH."""

from statefun_workers import IntType, StatefulFunctions, ValueSpec

functions = StatefulFunctions()


@functions.bind(typename="acme/counter", specs=[ValueSpec(name="count", type=IntType)])
def counter(context, message):
    context.storage.count = (context.storage.count or 0) + 1
    context.send(message_builder(target_typename="acme/echo", target_id=context.address.id,
                                 str_value=message.as_string()))


@functions.bind(typename="acme/echo")
async def echo(context, message):
    pass


from statefun_workers import message_builder  # noqa: E402  (a user's module may be untidy)
'''


@pytest.fixture(scope="session")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``mymodule.py`` (typenames acme/counter, acme/echo): what PYTHONPATH points at."""
    directory = tmp_path_factory.mktemp("user")
    (directory / "mymodule.py").write_text(USER_MODULE)
    return directory


@pytest.fixture(scope="session")
def installed(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv outside the repository with ``pip install <clone>``; returns its ``bin`` folder."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(venv)], env=clean_env())
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(clone)], env=clean_env(), cwd=venv)
    return venv / "bin"
