"""Serving from an installed package, from any directory, without the repository: what a user of the wheel does.

A new virtualenv outside the repository gets ``pip install <clone>``; a user's module sits in a folder of its
own, reached through ``PYTHONPATH``; the server runs from a third, empty, directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from statefun_workers import RequestReplyHandler
from statefun_workers.build_info import COMPILED_MODULES as COMPILED
from tests.server.wire import string_arg, to_function

from .commands import clean_env, run
from .serving import Served, build_info_sample, free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]

TYPENAMES = "acme/counter,acme/echo"


def _in_process_answer(user_dir: Path, body: bytes) -> bytes:
    """What this checkout's handler answers for ``body`` with the user's module (the oracle)."""
    sys.path.insert(0, str(user_dir))
    try:
        import mymodule  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(user_dir))
    return RequestReplyHandler(mymodule.functions).handle_sync(body)


def test_the_installed_modules_are_compiled_and_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = ("import json, statefun_workers.build_info as b, importlib; print(json.dumps({'compiled': b.compiled(),"
            " 'files': [importlib.import_module('statefun_workers.' + m).__file__ for m in b.COMPILED_MODULES]}))")
    done = run([str(installed / "python"), "-c", code], env=clean_env(), cwd=tmp_path)
    facts = json.loads(done.stdout)
    assert facts["compiled"] is True, facts
    for name, path in zip(COMPILED, facts["files"], strict=True):
        assert path.endswith(".so") and f"/{name}." in path and path.startswith(str(installed.parent)), path


def _check_serving(served: Served, user_dir: Path) -> None:
    record = served.start_record()
    assert "compiled=true" in str(record["msg"]) and TYPENAMES in str(record["msg"]), record
    status, _, body = served.get("/metrics")
    labels = build_info_sample(body.decode())
    assert labels["compiled"] == "true" and labels["typenames"] == TYPENAMES and labels == record["build"]
    batch = to_function("acme/counter", "id-7", [string_arg("hello")] * 3, state={"count": None})
    status, _, answer = served.post(batch)
    assert status == 200 and answer == _in_process_answer(user_dir, batch)
    status, _, answer = served.post(to_function("acme/counter", "id-7", [string_arg("x")]))
    assert status == 200 and answer == _in_process_answer(user_dir, to_function("acme/counter", "id-7",
                                                                                [string_arg("x")]))
    assert served.terminate(timeout=40) < 40 and served.proc.returncode == 0, served.log()
    assert all(line.startswith("{") for line in served.log().splitlines()), served.log()


def test_statefun_workers_serve(installed: Path, user_dir: Path, tmp_path: Path) -> None:
    """The issue's "Done when": serve a PYTHONPATH module with the console script, from an empty directory."""
    port = free_port()
    (tmp_path / "empty").mkdir()
    served = Served([str(installed / "statefun-workers"), "serve", "mymodule:functions", "-b", f"127.0.0.1:{port}"],
                    clean_env(PYTHONPATH=str(user_dir), WEB_CONCURRENCY="2"), tmp_path / "server.log", port,
                    cwd=tmp_path / "empty")
    try:
        served.wait_ready()
        _check_serving(served, user_dir)
    finally:
        served.stop()


def test_gunicorn_with_the_packaged_configuration_and_application(installed: Path, user_dir: Path,
                                                                  tmp_path: Path) -> None:
    port = free_port()
    argv = [str(installed / "gunicorn"), "-c", "python:statefun_workers.gunicorn_config", "-b",
            f"127.0.0.1:{port}", "statefun_workers.asgi:application"]
    (tmp_path / "empty").mkdir()
    served = Served(argv, clean_env(PYTHONPATH=str(user_dir), WEB_CONCURRENCY="1",
                                    STATEFUN_FUNCTIONS="mymodule:functions"),
                    tmp_path / "server.log", port, cwd=tmp_path / "empty")
    try:
        served.wait_ready()
        _check_serving(served, user_dir)
    finally:
        served.stop()


def test_check_lists_typenames_and_state(installed: Path, user_dir: Path, tmp_path: Path) -> None:
    done = run([str(installed / "statefun-workers"), "check", "mymodule"], env=clean_env(PYTHONPATH=str(user_dir)),
               cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert "compiled=true" in lines[0]
    assert lines[1:] == ["mymodule: 2 function(s)", "  acme/counter (sync)", "    state count: io.statefun.types/int",
                         "  acme/echo (async)"]


@pytest.mark.parametrize(("argv", "env", "cause", "hint"), [
    (["serve", "mymodule:functions"], {}, "cannot import 'mymodule'", "on PYTHONPATH"),
    (["serve", "mymodule:functions"], {"PORT": "eighty"}, "PORT must be a whole number", "fix the setting"),
    (["serve", "broken:functions"], {"PYTHONPATH": "USER"}, "ZeroDivisionError: division by zero (at ",
     "STATEFUN_LOG_LEVEL=debug"),
    (["check", "mymodule:nothing"], {"PYTHONPATH": "USER"}, "has no attribute 'nothing'", "MODULE:ATTR argument"),
    (["check", "mymodule:functions"], {"STATEFUN_MAX_HEADERS": "1"}, "STATEFUN_MAX_HEADERS", "fix the setting"),
])
def test_start_up_errors_are_one_json_line(installed: Path, user_dir: Path, tmp_path: Path, argv: list[str],
                                           env: dict[str, str], cause: str, hint: str) -> None:
    (user_dir / "broken.py").write_text("ratio = 1 / 0\n")
    env = {k: str(user_dir) if v == "USER" else v for k, v in env.items()}
    done = run([str(installed / "statefun-workers"), *argv], env=clean_env(**env), cwd=tmp_path, check=False,
               timeout=60)
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).splitlines()
    errors = [json.loads(line) for line in lines if '"level": "error"' in line]
    assert len(errors) == 1 and all(line.startswith("{") for line in lines), lines
    assert cause in errors[0]["msg"] and hint in errors[0]["hint"] and "Traceback" not in done.stderr, errors
    assert errors[0]["msg"].startswith("cannot start: " if argv[0] == "serve" else f"cannot {argv[0]}: "), errors
    if "PYTHONPATH" in hint:
        assert os.fspath(tmp_path) in errors[0]["hint"], "the hint names the module search path"
