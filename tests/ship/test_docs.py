"""The README documents the whole public API, and nothing in the repository points outside it."""

from __future__ import annotations

import re
import sys

import pytest

import statefun_workers

from .commands import REPO, run

README = (REPO / "README.md").read_text()

DOCUMENTED_CLASSES = ["Context", "Message", "EgressMessage", "StatefulFunctions", "StatefulFunction",
                      "RequestReplyHandler", "ValueSpec", "SdkAddress", "BatchResult", "StatefunError",
                      "FunctionError", "Type", "TypeSerializer"]
"""The classes a user's code touches; their public members are checked too."""


def _documented_names() -> set[str]:
    """Every identifier the README shows as code: in fenced blocks and in `inline code`."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", README, flags=re.S)
    names: set[str] = set()
    for code in fenced + re.findall(r"`([^`\n]+)`", prose):
        names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    return names


def test_every_public_name_is_documented_in_the_readme() -> None:
    missing = [name for name in statefun_workers.__all__ if name not in _documented_names()]
    assert not missing, f"statefun_workers exports names the README does not document: {missing}"


@pytest.mark.parametrize("class_name", DOCUMENTED_CLASSES)
def test_every_public_member_of_the_api_classes_is_documented(class_name: str) -> None:
    cls = getattr(statefun_workers, class_name)
    inherited = set(dir(object)) | set(dir(Exception)) | set(dir(KeyError)) | set(dir(ValueError))
    members = {name for name in dir(cls) if not name.startswith("_")} - inherited
    missing = sorted(members - _documented_names())
    assert not missing, f"{class_name} has public members the README does not document: {missing}"


def test_the_checker_sees_an_undocumented_name() -> None:
    assert "send_after" in _documented_names() and "definitely_not_documented" not in _documented_names()


def test_nothing_points_outside_the_repository() -> None:
    """Facts the code relies on are written into docs/; a path to a sibling folder works on one machine only."""
    outside = ["../" + "shared", "/work/" + "shared"]
    found = run(["git", "grep", "--untracked", "-n", "-I", "-F", *sum((["-e", p] for p in outside), []), "--", ".",
                 ":!tests/ship/test_docs.py"], cwd=REPO, check=False)
    assert found.returncode == 1 and not found.stdout, found.stdout


def test_the_quick_start_module_is_valid(tmp_path) -> None:
    """The README's greeter.py, as a user copies it: `statefun-workers check` accepts it."""
    (code,) = re.findall(r"```python\n# greeter\.py\n(.*?)```", README, flags=re.S)
    (tmp_path / "greeter.py").write_text(code)
    done = run([sys.executable, "-m", "statefun_workers", "check", "greeter:functions"], cwd=tmp_path)
    assert done.stdout.splitlines()[2:] == ["  example/greeter (sync)", "    state seen: io.statefun.types/int"]
