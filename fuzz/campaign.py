"""A fuzzing campaign: the handler target on both builds, each for a number of inputs, with its figures.

Usage: python -m fuzz.campaign [--runs N] [--work DIR]      (``make fuzz``: N = 10^6 per build)

Each build is fuzzed in its own process (fuzz/run.py), starting from the seeds in fuzz/corpus and keeping what
it finds in DIR/<build> (the seeds in git are never written to). Afterwards the corpus each run ended with is
replayed through the source of _read.py to count the lines of the reader it reaches. The summary is printed as
Markdown (docs/fuzzing.md keeps one); the exit status is non-zero when any run had a finding.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .builds import ROOT

SEEDS = ROOT / "fuzz" / "corpus"
BUILDS = ("compiled", "pure")


@dataclass
class Run:
    """One fuzzer run's figures: inputs executed, libFuzzer's coverage (cov: edges of instrumented code
    reached; ft: features, finer), the corpus it ended with, and the files of its findings."""

    build: str
    returncode: int
    inputs: int
    seconds: float
    cov: int
    ft: int
    corpus: int
    findings: list[str]
    output: str

    @property
    def failed(self) -> bool:
        return self.returncode != 0 or bool(self.findings)


def fuzz_once(target: str, build: str, runs: int, work: Path) -> Run:
    """Run the fuzzer for ``runs`` inputs; return its figures and output."""
    work.mkdir(parents=True, exist_ok=True)
    artifacts = work.parent / f"{work.name}-findings"
    artifacts.mkdir(exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fuzz.run", target, build, str(work), str(SEEDS), f"-runs={runs}",
         f"-artifact_prefix={artifacts}/", "-print_final_stats=1"],
        cwd=ROOT, capture_output=True, text=True)
    output = done.stdout + done.stderr
    final = re.findall(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/", output)
    executed = re.findall(r"stat::number_of_executed_units: (\d+)", output)
    return Run(build=build, returncode=done.returncode, inputs=int(executed[-1]) if executed else 0,
               seconds=round(time.monotonic() - started, 1),
               cov=int(final[-1][1]) if final else 0, ft=int(final[-1][2]) if final else 0,
               corpus=len(list(work.iterdir())) + len(list(SEEDS.iterdir())),
               findings=sorted(path.name for path in artifacts.iterdir()), output=output)


LINES = r"""
import json, sys
from pathlib import Path
from fuzz import builds
builds.select("pure")
from statefun_workers import _read
source = _read.__file__
executable, reached = set(), set()
def lines_of(code):
    if code.co_flags & 1:  # CO_OPTIMIZED: a function's body, not the module's or a class's (run on import)
        executable.update(line for _, _, line in code.co_lines() if line is not None)
    for const in code.co_consts:
        if hasattr(const, "co_lines"):
            lines_of(const)
lines_of(compile(Path(source).read_text(), source, "exec"))
def trace(frame, event, arg):
    if frame.f_code.co_filename == source:
        reached.add(frame.f_lineno)
        return trace
    return None
sys.settrace(trace)
for folder in sys.argv[1:]:
    for path in Path(folder).iterdir():
        for reader in (_read.read_to_function, _read.read_with_protobuf):
            try:
                [invocation.argument.payload for invocation in reader(path.read_bytes()).invocations]
            except ValueError:
                pass
sys.settrace(None)
print(json.dumps({"reached": len(reached & executable), "executable": len(executable),
                  "missed": sorted(executable - reached)}))
"""


def reader_lines(folders: list[Path]) -> dict[str, Any]:
    """How many lines of _read.py's functions the inputs in ``folders`` run, and which they miss."""
    done = subprocess.run([sys.executable, "-c", LINES, *map(str, folders)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "fuzz")
    args = parser.parse_args()
    results = [fuzz_once("handler", build, args.runs, args.work / build) for build in BUILDS]
    print("| build | inputs | seconds | inputs/s | cov | ft | corpus | findings |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.build} | {r.inputs:,} | {r.seconds} | {r.inputs / max(r.seconds, 0.1):,.0f} | {r.cov} "
              f"| {r.ft} | {r.corpus} | {len(r.findings)} |")
    lines = reader_lines([SEEDS, *(args.work / build for build in BUILDS)])
    print(f"\nLines of _read.py's functions run by the final corpus: {lines['reached']} of "
          f"{lines['executable']}; not run: {lines['missed']}")
    failed = [r for r in results if r.failed]
    for r in failed:
        print(f"\n{r.build}: exit {r.returncode}, findings {r.findings}\n{r.output[-3000:]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
