"""The server's upstream ranges, proven at the low end: a focused subset of the suite on the oldest versions.

pyproject.toml allows a range of uvicorn, uvicorn-worker, falcon, prometheus-client and gunicorn (and of
httptools and uvloop); the main venv resolves the newest of each. ``make test`` also builds
``.venv-upstream-min`` with the lowest of each (the Makefile's UPSTREAM_FLOORS), and this test runs there, from
the checkout, the tests that touch each dependency's behaviour and internals: the protocol held byte for byte
to uvicorn's, real pools answering as the official SDK does, the worker's lifecycle (uvicorn-worker's ``_serve``
restated, gunicorn's signals), the start-up check of the internals, and the metrics files prometheus-client
reads.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from .support import REPO

SUBSET = [
    "tests/server/test_http_protocol.py",
    "tests/server/test_server_protocol.py",
    "tests/server/test_server_lifecycle.py",
    "tests/server/test_server_upstream.py",
    "tests/metrics/test_metrics_recorder.py",
    "tests/metrics/test_metrics_multiprocess.py",
]
RANGED = ("uvicorn", "uvicorn-worker", "falcon", "prometheus-client", "gunicorn", "httptools", "uvloop")


def _floors_in_pyproject() -> dict[str, str]:
    text = (REPO / "pyproject.toml").read_text()
    dependencies = text[text.index("dependencies = ["):text.index("]", text.index("dependencies = ["))]
    found = dict(re.findall(r'"([a-z-]+)>=([0-9.]+)', dependencies))
    return {name: found[name] for name in RANGED}


def _floors_in_makefile() -> dict[str, str]:
    text = (REPO / "Makefile").read_text()
    floors = text[text.index("UPSTREAM_FLOORS :="):].split("\n\n")[0]
    return dict(re.findall(r"([a-z-]+)==([0-9.]+)", floors))


def _python() -> str:
    python = os.environ.get("STATEFUN_UPSTREAM_MIN_PYTHON", str(REPO / ".venv-upstream-min" / "bin" / "python"))
    assert os.path.exists(python), f"{python} is missing: make test builds the oldest upstream versions' venv"
    return python


def test_the_makefile_floors_are_the_pyproject_floors() -> None:
    """A floor is the lowest release of the range's lowest version (0.53 -> 0.53.0)."""
    makefile = _floors_in_makefile()
    for name, floor in _floors_in_pyproject().items():
        assert name in makefile, f"UPSTREAM_FLOORS in the Makefile has no {name}"
        assert re.fullmatch(re.escape(floor) + r"(\.0)*", makefile[name]), (name, floor, makefile[name])


@pytest.mark.slow
@pytest.mark.server
def test_the_server_runs_on_the_lowest_allowed_versions() -> None:
    python = _python()
    installed = json.loads(subprocess.run(
        [python, "-c", "import importlib.metadata as m, json, sys; "
                       "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))", *RANGED],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    assert installed == _floors_in_makefile(), "the venv is not at the floors: `make test` rebuilds it"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *SUBSET], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", done.stdout) and "skipped" not in done.stdout.splitlines()[-1]
