"""What every part of the suite shares: the repository's root, a free loopback port, and the programs it runs.

A program the suite runs for real is one that `make test` installs (the test extra, or
scripts/install-system-deps.sh): when it is missing, the set-up is broken, and the test fails saying so instead
of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_tool(name: str, installed_by: str) -> str:
    """The path of program ``name``, beside this interpreter (the test extra's) or on PATH; else a failure that
    names what installs it."""
    found = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {installed_by} installs it (make test runs that)", pytrace=False)
    return found
