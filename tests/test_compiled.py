"""The mypyc-compiled modules are in use, and the pure-Python source gives the same bytes as the compiled."""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from .test_protobuf_range import SCRIPT

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPILED = ["_wire", "types", "messages", "egress", "context", "_dispatch", "cells", "_read", "_tally", "_json"]


def test_setup_py_and_makefile_name_the_same_compiled_modules():
    from statefun_workers.build_info import COMPILED_MODULES

    assert tuple(COMPILED) == COMPILED_MODULES, "statefun_workers/build_info.py lists other modules"
    setup = (ROOT / "setup.py").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for name in COMPILED:
        assert f'"statefun_workers/{name}.py"' in setup
        assert f"{name}.py" in makefile


@pytest.mark.skipif(os.environ.get("STATEFUN_WORKERS_PURE_PYTHON") == "1", reason="pure-Python build asked for")
def test_hot_modules_are_compiled():
    """`make test` builds the extensions; a silent fallback to pure Python would hide a broken build."""
    for name in COMPILED:
        module = importlib.import_module(f"statefun_workers.{name}")
        assert not module.__file__.endswith(".py"), (
            f"statefun_workers.{name} runs as pure Python: this install was built without a C compiler or "
            f"with STATEFUN_WORKERS_PURE_PYTHON=1 (`make build` rebuilds it); to test pure Python on purpose, "
            f"run the suite with STATEFUN_WORKERS_PURE_PYTHON=1")
        assert os.path.exists(module.__file__), f"statefun_workers.{name}.__file__ = {module.__file__}"


def _responses(pythonpath: pathlib.Path) -> tuple[list[str], str]:
    probe = SCRIPT.replace('print(json.dumps({"protobuf": protobuf_version, "responses": out}))',
                           'import statefun_workers._dispatch as d\n'
                           'print(json.dumps({"responses": out, "dispatch": d.__file__}))')
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=pythonpath,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["responses"], result["dispatch"]


def test_pure_python_source_gives_the_same_bytes_as_the_compiled_modules(tmp_path):
    pure = tmp_path / "pure"
    shutil.copytree(ROOT / "statefun_workers", pure / "statefun_workers",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    compiled_responses, compiled_file = _responses(ROOT)
    pure_responses, pure_file = _responses(pure)
    assert pure_file.endswith(".py") and pure_file.startswith(str(pure))
    assert any(compiled_responses) and pure_responses == compiled_responses
