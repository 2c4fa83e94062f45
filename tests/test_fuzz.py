"""A short coverage-guided fuzzing run of the handler on both builds (the long one is ``make fuzz``), and proof
that the fuzzer reports a disagreement with protobuf when there is one. docs/fuzzing.md says how it works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.builds import ROOT
from fuzz.campaign import SEEDS, fuzz_once

pytestmark = pytest.mark.slow

RUNS = 150_000
"""Inputs per build: 10-20 s each on an idle machine (docs/fuzzing.md has the rates)."""


def test_atheris_is_installed():
    """The test extras install it (pyproject.toml); without it there is no fuzzing, so fail, never skip."""
    import atheris  # noqa: F401


@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_short_fuzzing_run_finds_nothing(build: str, tmp_path: Path):
    run = fuzz_once("handler", build, RUNS, tmp_path / build)
    assert not run.failed, run.output[-5000:]
    assert run.inputs == RUNS, run.output[-2000:]
    assert run.cov > 0


def test_seed_corpus_is_small_and_current(tmp_path: Path):
    """The seeds in git are fuzz/make_corpus.py's output, and small."""
    subprocess.run([sys.executable, "-m", "fuzz.make_corpus", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    kept = {path.name: path.read_bytes() for path in SEEDS.iterdir()}
    assert kept == written
    assert sum(map(len, kept.values())) < 200_000


PLANTED = r"""
import sys
from fuzz import builds, run
builds.select("pure")
from statefun_workers import _read
_read.MAX_DEPTH = 1000  # the planted bug: nesting accepted far past protobuf's bound
run.fuzz("reader", "pure", [sys.argv[0], *sys.argv[1:]])
"""


def test_the_fuzzer_reports_a_planted_disagreement(tmp_path: Path):
    (tmp_path / "work").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", PLANTED, str(tmp_path / "work"), str(SEEDS), "-runs=20000",
         f"-artifact_prefix={tmp_path}/"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Disagreement" in output and "protobuf 'refused'" in output, output[-3000:]
    assert list(tmp_path.glob("crash-*"))
