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

from statefun_workers.build_info import COMPILED_MODULES

from .test_protobuf_range import SCRIPT

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPILED = COMPILED_MODULES


def test_the_makefile_reads_the_one_list_of_compiled_modules():
    """An edit to any compiled module rebuilds the extensions: the Makefile's list is build_info's."""
    done = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-compiled: ; @echo $(COMPILED)",
                           "print-compiled"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"statefun_workers/{name}.py" for name in COMPILED_MODULES]


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
