"""At start the master says what runs, in one log line and in the ``statefun_build_info`` metric.

Real gunicorn masters from the repository's entry point: once with this checkout's compiled modules, once
with a copy of the package's source alone (the pure-Python install a build without a compiler makes).
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

import google.protobuf
import pytest

import statefun_workers
from examples import functions as example_functions

from .commands import REPO, clean_env, run
from .serving import Served, build_info_sample, free_port

pytestmark = pytest.mark.server

EXAMPLE_TYPENAMES = ",".join(sorted(example_functions.functions))


def _serve_repo(tmp_path: Path, pythonpath: list[Path], **env: str) -> Served:
    port = free_port()
    served = Served(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}", "app"],
        clean_env(WEB_CONCURRENCY="1", STATEFUN_FUNCTIONS="examples",
                  PYTHONPATH=os.pathsep.join(map(str, pythonpath)), **env),
        tmp_path / "server.log", port, cwd=tmp_path)
    served.wait_ready()
    return served


def _check(served: Served, compiled: str) -> None:
    record = served.start_record()
    assert record["level"] == "info" and record["pid"] == served.proc.pid
    expected = {"version": statefun_workers.__version__, "compiled": compiled, "python": platform.python_version(),
                "protobuf": google.protobuf.__version__, "typenames": EXAMPLE_TYPENAMES}
    build = record["build"]
    assert isinstance(build, dict) and {k: build[k] for k in expected} == expected
    assert build["protobuf_backend"] in ("upb", "cpp", "python")
    assert f"compiled={compiled}" in str(record["msg"]) and EXAMPLE_TYPENAMES in str(record["msg"])
    status, _, body = served.get("/metrics")
    assert status == 200
    assert build_info_sample(body.decode()) == build


@pytest.mark.skipif(os.environ.get("STATEFUN_WORKERS_PURE_PYTHON") == "1", reason="pure-Python build asked for")
def test_the_compiled_checkout_says_compiled_true(tmp_path: Path) -> None:
    served = _serve_repo(tmp_path, [REPO])
    try:
        _check(served, "true")
        assert not [r for r in served.log_records() if r["level"] == "warning"], served.log()
    finally:
        served.stop()


def test_the_pure_python_package_says_compiled_false_and_warns(tmp_path: Path) -> None:
    source = tmp_path / "pure"
    shutil.copytree(REPO / "statefun_workers", source / "statefun_workers",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    served = _serve_repo(tmp_path, [source, REPO])
    try:
        _check(served, "false")
        warnings = [r for r in served.log_records() if r["level"] == "warning"]
        assert len(warnings) == 1 and "pure-Python modules are running" in str(warnings[0]["msg"]), served.log()
    finally:
        served.stop()
    # The image build's check: a pure-Python install fails it unless asked for.
    check = [sys.executable, "-m", "statefun_workers.build_info"]
    refused = run(check, env=clean_env(PYTHONPATH=str(source)), cwd=tmp_path, check=False)
    assert refused.returncode == 1 and '"compiled": "false"' in refused.stdout, refused
    run(check, env=clean_env(PYTHONPATH=str(source), STATEFUN_WORKERS_PURE_PYTHON="1"), cwd=tmp_path)
