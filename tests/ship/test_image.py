"""The container image, built and run for real with podman: what ships is what is tested.

No container registry is reachable from the test machine, so the base images are made from Debian's packages
(``scripts/debian-base-images.sh``: debootstrap, then ``podman import``) and passed in as ``BUILD_IMAGE`` and
``RUNTIME_IMAGE``; they stay in podman's store, so only the first run pays for them (about 2.5 minutes). pip
inside the build uses this machine's own pip configuration (``pip config list``, ``PIP_*``), written to a
temporary ``/etc/pip.conf`` mounted into the build with the files it names (a CA bundle, say).

Podman runs here with ``--runtime runc``, ``--network host`` and explicit ulimits (the sandbox's defaults are
higher than its own hard limits). Without podman or debootstrap the tests skip with the reason, except under
``CI=true`` (``.ci/run``), where ``make test`` installs them and a skip would hide a broken image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import examples
from statefun_workers import RequestReplyHandler
from tests.server.wire import greeter_request, json_arg, to_function

from .commands import REPO, run
from .serving import Served, build_info_sample, free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]

PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
PROJECT_IMAGE = "localhost/statefun-workers:test"
USER_IMAGE = "localhost/statefun-workers-user-functions:test"
USER_FUNCTIONS = REPO / "deploy" / "user-functions"
GRACE_SECONDS = 32
"""gunicorn_config's graceful_timeout with the defaults: drain 0 + STATEFUN_GRACEFUL_TIMEOUT 30 + 2."""


@pytest.fixture(scope="session")
def podman() -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        reason = (f"the image is NOT tested: {', '.join(missing)} missing (Debian packages; "
                  f"scripts/install-system-deps.sh installs them)")
        pytest.fail(reason, pytrace=False)


def pip_configuration(directory: Path) -> list[str]:
    """``podman build`` options giving the build this machine's pip configuration (never written to the repo)."""
    listed = run([sys.executable, "-m", "pip", "config", "list"]).stdout
    sections: dict[str, dict[str, str]] = {}
    files: dict[str, None] = {}
    for line in listed.splitlines():
        match = re.fullmatch(r"([^.]*)\.([\w-]+)='(.*)'", line.strip())
        if not match:
            continue
        section, key, value = match.groups()
        # NOTE: pip lists the environment's settings last; they win, as in pip.
        sections.setdefault("global" if section in ("", ":env:") else section, {})[key] = value
        for word in value.split():
            if os.path.isabs(word) and os.path.exists(word):
                files[word] = None
    conf = directory / "pip.conf"
    conf.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                            for name, keys in sections.items()))
    mounts = [f"{conf}:/etc/pip.conf:ro", *(f"{path}:{path}:ro" for path in files)]
    return [f"--volume={mount}" for mount in mounts]


def build(tag: str, context: Path, *args: str) -> float:
    """``podman build``; the seconds it took."""
    started = time.monotonic()
    run([*PODMAN, "build", "--network", "host", *LIMITS, *args, "--tag", tag, str(context)], timeout=3600)
    return time.monotonic() - started


@pytest.fixture(scope="session")
def project_image(podman: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    started = time.monotonic()
    bases = run([str(REPO / "scripts" / "debian-base-images.sh")], timeout=3600).stdout.split()
    assert len(bases) == 2, bases
    print(f"\nbase images {bases} ready in {time.monotonic() - started:.0f} s")
    seconds = build(PROJECT_IMAGE, REPO, f"--build-arg=BUILD_IMAGE={bases[0]}",
                    f"--build-arg=RUNTIME_IMAGE={bases[1]}", *pip_configuration(tmp_path_factory.mktemp("pip")))
    print(f"project image built in {seconds:.0f} s")
    return PROJECT_IMAGE


@pytest.fixture(scope="session")
def user_image(project_image: str) -> str:
    build(USER_IMAGE, USER_FUNCTIONS, f"--build-arg=BASE_IMAGE={project_image}")
    return USER_IMAGE


@pytest.fixture
def container(tmp_path: Path) -> Iterator[object]:
    """Start an image as the Deployment runs it: non-root, read-only root filesystem; removed after."""
    names: list[str] = []
    started: list[Served] = []

    def start(image: str) -> Served:
        name = f"statefun-workers-test-{os.getpid()}-{len(names)}"
        names.append(name)
        port = free_port()
        argv = [*PODMAN, "run", "--rm", "--name", name, "--network", "host", *LIMITS, "--user", "10001:10001",
                "--read-only", "--env", "WEB_CONCURRENCY=2", "--env", f"PORT={port}",
                "--env", f"GUNICORN_CMD_ARGS=--bind=127.0.0.1:{port}", image]
        served = Served(argv, dict(os.environ), tmp_path / f"{name}.log", port)
        served.container_name = name  # type: ignore[attr-defined]
        started.append(served)
        served.wait_ready(timeout=120)
        return served

    yield start
    for served in started:
        served.stop()
    for name in names:
        subprocess.run([*PODMAN, "rm", "--force", "--ignore", name], capture_output=True, timeout=120)


def _stop_within_grace(served: Served) -> None:
    started = time.monotonic()
    run([*PODMAN, "kill", "--signal", "TERM", served.container_name])  # type: ignore[attr-defined]
    served.proc.wait(timeout=GRACE_SECONDS + 30)
    elapsed = time.monotonic() - started
    assert elapsed < GRACE_SECONDS and served.proc.returncode == 0, (elapsed, served.log())
    assert "Shutting down: Master" in served.log()


def _check_build_info(served: Served, typenames: str) -> None:
    record = served.start_record()
    assert record["pid"] == 1, "gunicorn is PID 1: SIGTERM reaches it directly"
    assert "compiled=true" in str(record["msg"]) and typenames in str(record["msg"]), record
    labels = build_info_sample(served.get("/metrics")[2].decode())
    assert labels["compiled"] == "true" and labels["typenames"] == typenames and labels == record["build"]


def test_the_image_serves_the_greeter_byte_for_byte(project_image: str, container) -> None:
    served = container(project_image)
    _check_build_info(served, ",".join(sorted(examples.functions.functions)))
    handler = RequestReplyHandler(examples.functions)
    for body in (greeter_request("Alice", messages=3), greeter_request("Bob", seen=7)):
        status, headers, answer = served.post(body)
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        assert answer == handler.handle_sync(body)
    user = run([*PODMAN, "exec", served.container_name, "id", "-u"]).stdout.strip()  # type: ignore[attr-defined]
    assert user == "10001"
    touched = subprocess.run([*PODMAN, "exec", served.container_name, "touch", "/app/x"],  # type: ignore[attr-defined]
                             capture_output=True, text=True, timeout=60)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr
    _stop_within_grace(served)


def test_an_image_of_user_functions_from_the_project_image(user_image: str, container) -> None:
    served = container(user_image)
    _check_build_info(served, "acme/orders")
    sys.path.insert(0, str(USER_FUNCTIONS))
    try:
        import orders  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(USER_FUNCTIONS))
    body = to_function("acme/orders", "customer-1", [json_arg("acme/Order", {"sku": "a-1", "n": 2})] * 10,
                       state={"count": None})
    status, _, answer = served.post(body)
    assert status == 200 and answer == RequestReplyHandler(orders.functions).handle_sync(body)
    _stop_within_grace(served)


def test_the_user_functions_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([hadolint, "--no-color", str(USER_FUNCTIONS / "Dockerfile")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
