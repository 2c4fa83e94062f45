"""Side-by-side HTTP benchmark: this checkout's server against the official SDKs and an HTTP floor.

Usage (from the repository root, with the project's venv, e.g. after ``make test`` or ``make serve``)::

    .venv/bin/python benchmarks/side_by_side.py --seconds 5 --rounds 3 \
        [--workloads greeter,greeter-b10,cart] [--only candidate,official-aiohttp,...] [--cache-dir DIR]

What it does, and why (details in ``benchmarks/README.md``):

1. prepares a cache folder once (default ``~/.cache/statefun-workers-bench``): a venv with the peers, the
   JavaScript SDK from npm, ``wrk`` (apt, as root) and the request bodies, so a fresh clone needs nothing else;
2. starts every server with one worker process pinned to CPU 1, and checks each answers a real request with
   200 and ``application/octet-stream``, and that the candidate's answer parses to the same ``FromFunction``
   as the official SDK's, before anything is measured (a fast wrong answer is not a result);
3. drives each server in turn (A B C ... per round) with ``wrk -t1 -c8`` pinned to CPU 0, rotating 64 bodies,
   so that the servers share the machine's noise evenly; each figure is the median of the rounds;
4. prints a table and, last, ``ratios: <workload>:<peer>=<candidate req/s / peer req/s> ...``. Quote the
   ratios: absolute figures on a shared 2-core machine move from run to run, the ratios much less.

Every server runs in its own process group and is killed when the run ends, however it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported at run time only after check_machine() said statefun_workers is there
    from statefun_workers.request_reply_pb2 import FromFunction, TypedValue

REPO = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers"
DEFAULT_CACHE = Path.home() / ".cache" / "statefun-workers-bench"

SERVER_CPU = "1"
"""The one core every server runs on; wrk gets the other, so client and server never compete."""
CLIENT_CPU = "0"
CONNECTIONS = 8
BODIES_PER_WORKLOAD = 64

WORKLOADS = ("greeter", "greeter-b10", "cart", "doc-4k", "bigstate", "doc-1m")
DOC_BYTES = {"doc-4k": 4 * 1024, "bigstate": 64 * 1024, "doc-1m": 1_000_000}
"""The JSON document the ``example/doc`` workloads hold as state. 1 MB stays under aiohttp's default body
limit (1 MiB), which the official SDK's server keeps."""
SERVERS = ("candidate", "official-aiohttp", "official-flask", "js-sdk-node", "floor-falcon-asgi")
SDK_SERVERS = ("official-aiohttp", "official-flask", "js-sdk-node")
"""Servers that run the real functions; their answers must equal the candidate's. The floor answers one byte."""
PYTHON_PEERS = {"official-aiohttp", "official-flask", "floor-falcon-asgi"}
"""Servers that run from the peers' venv in the cache."""

PEER_REQUIREMENTS = (
    "flink-statefun==3.5.0", "aiohttp", "flask", "gunicorn", "uvicorn-worker", "uvicorn[standard]", "falcon",
)
"""What the peers' venv holds. The official SDK is pinned: 3.5.0 is the official code (the same as npm's
3.3.0 JavaScript SDK's protocol) repackaged for a modern protobuf."""
JS_PACKAGE = ("apache-flink-statefun", "3.3.0")

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


class BenchError(Exception):
    """A prerequisite is missing or a server misbehaved: the message says which and what to do."""


# ---------------------------------------------------------------------------------------------------------------
# 1. The cache folder: peers' venv, JavaScript SDK, wrk, bodies.
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cache:
    """Paths inside the cache folder."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def node_modules(self) -> Path:
        return self.root / "js" / "node_modules"

    def bodies(self, workload: str) -> Path:
        return self.root / "bodies" / workload


def run_checked(argv: list[str], what: str, **kwargs: object) -> None:
    """Run a set-up command; on failure raise with its output, so the user sees pip's or npm's own words."""
    print(f"setup: {what}: {' '.join(argv)}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise BenchError(f"{what} failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def check_machine() -> None:
    """Fail early on what the cache cannot fix: the tools and the two cores the method needs."""
    for tool, hint in (("taskset", "apt-get install -y util-linux"), ("node", "install Node.js 18+"),
                       ("npm", "install npm (it comes with Node.js)")):
        if shutil.which(tool) is None:
            raise BenchError(f"`{tool}` is not on PATH: {hint}")
    cpus = os.sched_getaffinity(0)
    if not {int(SERVER_CPU), int(CLIENT_CPU)} <= cpus:
        raise BenchError(f"this benchmark pins servers to CPU {SERVER_CPU} and wrk to CPU {CLIENT_CPU}, "
                         f"but this process may only use CPUs {sorted(cpus)}")
    for module in ("gunicorn", "uvicorn_worker", "falcon", "statefun_workers"):
        if importlib.util.find_spec(module) is None:
            raise BenchError(f"`{module}` is not importable by {sys.executable}: run this with the project's "
                             "venv, e.g. `make test` once, then `.venv/bin/python benchmarks/side_by_side.py`")


def ensure_wrk() -> None:
    """wrk is the load generator; install it from apt when we may (root), else say how."""
    if shutil.which("wrk") is not None:
        return
    if os.geteuid() != 0:
        raise BenchError("`wrk` is not on PATH: run `sudo apt-get install -y wrk` (or install wrk 4.x), then retry")
    run_checked(["apt-get", "update", "-q"], "apt-get update")
    run_checked(["apt-get", "install", "-y", "-q", "wrk"], "install wrk", env=dict(os.environ,
                DEBIAN_FRONTEND="noninteractive"))
    if shutil.which("wrk") is None:
        raise BenchError("apt-get installed wrk but it is still not on PATH")


def ensure_peer_venv(cache: Cache) -> None:
    """A venv of its own for the peers, so their dependencies (aiohttp, flask, the official SDK) never mix
    with the project's. A stamp file holding the requirement list makes a second run skip pip."""
    stamp = cache.root / "venv" / "requirements.stamp"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if cache.python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    if not cache.python.exists():
        # The peers run on the same interpreter version as the candidate (a venv made from a venv uses its base).
        run_checked([sys.executable, "-m", "venv", str(cache.root / "venv")], "create the peers' venv")
    run_checked([str(cache.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 *PEER_REQUIREMENTS], "install the peers")
    stamp.write_text(wanted)


def ensure_js_sdk(cache: Cache) -> None:
    """The JavaScript SDK in a folder of the cache; server.js finds it through NODE_PATH."""
    name, version = JS_PACKAGE
    manifest = cache.node_modules / name / "package.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("version") == version:
        return
    js = cache.root / "js"
    js.mkdir(parents=True, exist_ok=True)
    if not (js / "package.json").exists():
        (js / "package.json").write_text(json.dumps({"name": "statefun-workers-bench-js", "private": True}))
    run_checked(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", f"{name}@{version}"],
                "install the JavaScript SDK", cwd=str(js))


def typed(typename: str, value: bytes | None) -> TypedValue:
    """A TypedValue as the runtime sends it: ``has_value`` false and no bytes for an unset state."""
    from statefun_workers import request_reply_pb2 as rr

    if value is None:
        return rr.TypedValue(typename=typename, has_value=False)
    return rr.TypedValue(typename=typename, has_value=True, value=value)


def to_function(target: str, target_id: str, states: dict[str, TypedValue], arguments: list[TypedValue]) -> bytes:
    """One ToFunction batch: the target address, every state the function declares, the invocations."""
    from statefun_workers import request_reply_pb2 as rr

    request = rr.ToFunction()
    batch = request.invocation
    batch.target.namespace, _, batch.target.type = target.rpartition("/")
    batch.target.id = target_id
    for name, value in states.items():
        batch.state.add(state_name=name).state_value.CopyFrom(value)
    for argument in arguments:
        invocation = batch.invocations.add()
        invocation.caller.namespace, invocation.caller.type, invocation.caller.id = "example", "frontend", "web-1"
        invocation.argument.CopyFrom(argument)
    return request.SerializeToString()


def make_bodies(workload: str) -> list[bytes]:
    """64 realistic requests of a workload, the same on every run (seeded by the workload's name).

    Users are spread over 1000 ids; one greeter request in eight is a user seen for the first time (state
    sent without a value, as the runtime does), so both branches of ``or 0`` run. The cart's basket is
    ~2 KB of JSON; about a third of the commands add an item that is not in it yet.
    """
    from statefun_workers import types_pb2

    rng = random.Random(f"statefun-workers-bench/{workload}")
    bodies = []
    for index in range(BODIES_PER_WORKLOAD):
        user = f"user-{rng.randrange(1000):03d}"
        if workload in ("greeter", "greeter-b10"):
            seen = None if index % 8 == 0 else types_pb2.IntWrapper(value=rng.randrange(1, 100)).SerializeToString()
            name = typed("io.statefun.types/string", types_pb2.StringWrapper(value=user).SerializeToString())
            count = 10 if workload == "greeter-b10" else 1
            bodies.append(to_function("example/greeter", user, {"seen": typed("io.statefun.types/int", seen)},
                                      [name] * count))
        elif workload == "cart":
            basket = {f"item-{i:03d}": rng.randrange(1, 10) for i in range(130)}
            command = {"item": f"item-{rng.randrange(200):03d}", "qty": rng.randrange(1, 4)}
            bodies.append(to_function(
                "example/cart", user, {"basket": typed("com.example/Basket", json.dumps(basket).encode())},
                [typed("com.example/Cmd", json.dumps(command).encode())]))
        elif workload in DOC_BYTES:
            document = json.dumps(json_document(DOC_BYTES[workload])).encode()
            number = typed("io.statefun.types/int", types_pb2.IntWrapper(value=index).SerializeToString())
            bodies.append(to_function("example/doc", user, {"doc": typed("com.example/Doc", document)}, [number]))
        else:
            raise BenchError(f"unknown workload {workload!r}: choose from {', '.join(WORKLOADS)}")
    return bodies


def json_document(size: int) -> dict[str, list[dict[str, object]]]:
    """A document of about ``size`` bytes of JSON: ``{"events": [{"n": 0, "tag": "event"}, ...]}``, 700 short
    events, then longer ones until the size is reached (the shared benchmark's ``bigstate`` document)."""
    events: list[dict[str, object]] = []
    document = {"events": events}
    written = len(json.dumps(document))
    while written < size:
        tag = "event" if len(events) < 700 else "event-padding-" + "p" * 40
        event: dict[str, object] = {"n": len(events), "tag": tag}
        events.append(event)
        written += len(json.dumps(event)) + 2
    return document


def write_bodies(folder: Path, bodies: list[bytes]) -> None:
    """Write 000.bin, 001.bin, ... for the wrk script; rewriting identical bytes keeps this idempotent."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.bin"):
        stale.unlink()
    for index, body in enumerate(bodies):
        (folder / f"{index:03d}.bin").write_bytes(body)


def prepare(cache: Cache, workloads: list[str], servers: list[str]) -> dict[str, list[bytes]]:
    """Make the cache ready for this run (only what the chosen servers need) and return the bodies."""
    check_machine()
    ensure_wrk()
    if set(servers) & PYTHON_PEERS:
        ensure_peer_venv(cache)
    if "js-sdk-node" in servers:
        ensure_js_sdk(cache)
    bodies = {}
    for workload in workloads:
        bodies[workload] = make_bodies(workload)
        write_bodies(cache.bodies(workload), bodies[workload])
    return bodies


# ---------------------------------------------------------------------------------------------------------------
# 2. The servers.
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """How to start one server: argv (without the CPU pinning), folder, extra environment."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]


def server_commands(cache: Cache, scratch: Path) -> dict[str, Callable[[int], Command]]:
    """The five servers, as functions of the port they must listen on."""
    module = scratch / "bench_candidate_functions.py"
    module.write_text(
        '"""Generated by benchmarks/side_by_side.py: the benchmark workload built with statefun_workers."""\n'
        f"import sys\nsys.path.insert(0, {str(PEERS)!r})\n"
        "import statefun_workers\nimport workload\n\n"
        "functions = workload.build(statefun_workers)\n")
    metrics = scratch / "prometheus"
    metrics.mkdir()
    peer_python = str(cache.python)

    def candidate(port: int) -> Command:
        # Exactly what users run (`make serve`): the repository's gunicorn.conf.py and app.py, metrics on.
        return Command([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app"], REPO, {
            "PORT": str(port), "WEB_CONCURRENCY": "1",
            "STATEFUN_FUNCTIONS": "bench_candidate_functions:functions",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics), "PYTHONPATH": str(scratch)})

    def official_aiohttp(port: int) -> Command:
        return Command([peer_python, "official_aiohttp.py", str(port)], PEERS, {})

    def official_flask(port: int) -> Command:
        return Command([peer_python, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                        "official_flask:app"], PEERS, {})

    def js_sdk_node(port: int) -> Command:
        return Command(["node", "server.js", str(port)], PEERS, {"NODE_PATH": str(cache.node_modules)})

    def floor(port: int) -> Command:
        return Command([peer_python, "-m", "gunicorn", "-w", "1", "-k", "uvicorn_worker.UvicornWorker",
                        "-b", f"127.0.0.1:{port}", "floor_falcon_asgi:app"], PEERS, {})

    return {"candidate": candidate, "official-aiohttp": official_aiohttp, "official-flask": official_flask,
            "js-sdk-node": js_sdk_node, "floor-falcon-asgi": floor}


@dataclass
class Server:
    """A started server: its process group leader, port and log."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/statefun"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def free_port() -> int:
    """A port the kernel just gave out; the race with another program taking it is harmless here."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment() -> dict[str, str]:
    """The caller's environment without settings that would change how a server runs (a STATEFUN_* left in
    a shell would otherwise silently change the candidate's configuration)."""
    drop = ("PORT", "WEB_CONCURRENCY", "PYTHONPATH", "NODE_PATH", "PROMETHEUS_MULTIPROC_DIR", "GUNICORN_CMD_ARGS",
            "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("STATEFUN_")}


def stop(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers; never raises."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    # The leader may have exited while a worker of its group lives on: always finish the group off.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def running(names: list[str], commands: dict[str, Callable[[int], Command]], scratch: Path) -> Iterator[
        dict[str, Server]]:
    """Start the servers and yield them; stop every one on the way out, on success, error or Ctrl-C."""
    servers: dict[str, Server] = {}
    try:
        for name in names:
            port = free_port()
            command = commands[name](port)
            log = scratch / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    ["taskset", "-c", SERVER_CPU, *command.argv], cwd=command.cwd,
                    env={**clean_environment(), **command.env}, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            servers[name] = Server(name, process, port, log)
        yield servers
    finally:
        for server in servers.values():
            stop(server)


def post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """POST a body as the runtime does; return status, content type and answer (errors included)."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.headers.get("Content-Type", ""), ex.read()


def wait_ready(server: Server, body: bytes) -> None:
    """Poll with a real request until the server answers; raise with its log if it dies or never does."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited with {server.process.returncode} while starting; its log:\n"
                             f"{server.log_tail()}")
        try:
            post(server.url, body, timeout=2.0)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"{server.name} did not answer on {server.url} within {START_TIMEOUT_SECONDS:.0f} "
                                 f"s; its log:\n{server.log_tail()}") from None
            time.sleep(0.2)


JSON_TYPES = ("com.example/Basket", "com.example/Cmd", "com.example/Doc")
"""The workload's JSON types. The official SDK writes ``{"a": 1}``, the candidate and JavaScript ``{"a":1}``:
the same value, which is the contract for JSON values (docs/json.md)."""


def canonical(answer: FromFunction) -> FromFunction:
    """A copy with every JSON state value re-encoded one way, so SDKs in different languages compare equal
    when they wrote the same JSON value (and only then)."""
    copy = type(answer)()
    copy.CopyFrom(answer)
    for mutation in copy.invocation_result.state_mutations:
        value = mutation.state_value
        if value.typename in JSON_TYPES and value.has_value:
            value.value = json.dumps(json.loads(value.value), sort_keys=True).encode()
    return copy


def sanity(servers: dict[str, Server], workload: str, body: bytes) -> None:
    """Before measuring: every server answers 200 + application/octet-stream, and every SDK's answer parses
    to the same FromFunction as the candidate's (so all of them do the same work, and do it right): byte for
    byte in every field but the JSON values, which must hold the same value."""
    from google.protobuf import text_format

    from statefun_workers import request_reply_pb2 as rr

    answers: dict[str, FromFunction] = {}
    for name, server in servers.items():
        status, content_type, data = post(server.url, body)
        if status != 200 or content_type.split(";")[0].strip() != "application/octet-stream":
            raise BenchError(f"{name} answered the first {workload} body with {status} {content_type!r}: "
                             f"{data[:300]!r}\nits log:\n{server.log_tail()}")
        if name == "candidate" or name in SDK_SERVERS:
            answers[name] = rr.FromFunction.FromString(data)
    reference = answers.get("candidate")
    if reference is None:
        return
    for name, answer in answers.items():
        if canonical(answer) != canonical(reference):
            raise BenchError(f"{workload}: {name}'s answer differs from the candidate's.\ncandidate:\n"
                             f"{text_format.MessageToString(reference)}\n{name}:\n"
                             f"{text_format.MessageToString(answer)}")


# ---------------------------------------------------------------------------------------------------------------
# 3. Measuring with wrk.
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    """One wrk run: throughput, 99th percentile latency, and failed requests (non-200 + socket errors)."""

    rps: float
    p99_ms: float
    errors: int


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(text: str) -> Result:
    """Read wrk's report (``--latency``) and the Lua script's ``non-200: N`` line."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    non200 = re.search(r"non-200: (\d+)", text)
    if rps is None or p99 is None or non200 is None:
        raise BenchError(f"could not read wrk's output:\n{text}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    # NOTE: read errors are how wrk sees a server closing after each response (gunicorn's sync worker has no
    #   keep-alive): wrk reconnects and the request is not lost, so only connect/write/timeout count.
    failed = int(non200.group(1))
    if socket_errors is not None:
        failed += int(socket_errors.group(1)) + int(socket_errors.group(3)) + int(socket_errors.group(4))
    return Result(float(rps.group(1)), float(p99.group(1)) * _UNIT_MS[p99.group(2)], failed)


def wrk(server: Server, bodies: Path, seconds: int) -> Result:
    """Drive a server for ``seconds`` from the client CPU, 1 thread, 8 keep-alive connections."""
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
            "-s", str(PEERS / "wrk_bodies.lua"), server.url]
    done = subprocess.run(argv, env={**os.environ, "BODIES_DIR": str(bodies)}, capture_output=True, text=True,
                          timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed on {server.name} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout + done.stderr)


@dataclass(frozen=True)
class Paced:
    """One fixed-rate run (``paced_load.py``): the rate asked, the rate answered, latency from when each request
    was due, failed requests, and how late the generator itself sent (its own limit)."""

    rate: float
    achieved: float
    p50_ms: float
    p99_ms: float
    errors: int
    send_lag_p99_ms: float


def paced(server: Server, bodies: Path, rate: float, seconds: int) -> Paced:
    """Drive a server at a constant ``rate`` for ``seconds`` from the client CPU (an open loop: see
    ``paced_load.py``, which runs on this interpreter)."""
    argv = ["taskset", "-c", CLIENT_CPU, sys.executable, str(Path(__file__).resolve().parent / "paced_load.py"),
            server.url, str(bodies), f"{rate:.1f}", str(seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"paced_load.py failed on {server.name} (exit {done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    return Paced(rate, report["achieved_rate"], report["p50_ms"], report["p99_ms"],
                 report["non_200"] + report["socket"] + report["sent"] - report["answered"], report["send_lag_p99_ms"])


# ---------------------------------------------------------------------------------------------------------------
# 4. The run.
# ---------------------------------------------------------------------------------------------------------------

def versions(cache: Cache, names: list[str]) -> str:
    """One line naming what was compared, so a pasted table says which interpreters and tools it came from."""
    parts = [f"candidate python {sys.version.split()[0]}"]
    if set(names) & PYTHON_PEERS:
        peer = subprocess.run([str(cache.python), "-c", "import sys; print(sys.version.split()[0])"],
                              capture_output=True, text=True).stdout.strip()
        parts.append(f"peers python {peer}")
    if "js-sdk-node" in names:
        parts.append("node " + subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip())
    return ", ".join(parts)


def choose(option: str, allowed: tuple[str, ...], what: str) -> list[str]:
    """Split a comma-separated option, keep the canonical order, refuse unknown names."""
    chosen = [part.strip() for part in option.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in allowed]
    if unknown:
        raise BenchError(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return [name for name in allowed if name in chosen]


def print_table(workloads: list[str], names: list[str], results: dict[tuple[str, str], list[Result]]) -> None:
    """The medians per server and workload, then the ratios line (candidate req/s over each peer's)."""
    print(f"{'workload':<12} {'server':<18} {'req/s':>9} {'p99 ms':>8} {'errors':>7}")
    ratios = []
    for workload in workloads:
        medians = {}
        for name in names:
            runs = results[(workload, name)]
            medians[name] = statistics.median(r.rps for r in runs)
            p99 = statistics.median(r.p99_ms for r in runs)
            errors = sum(r.errors for r in runs)
            print(f"{workload:<12} {name:<18} {medians[name]:>9.0f} {p99:>8.2f} {errors:>7}")
        if "candidate" in medians:
            ratios += [f"{workload}:{name}={medians['candidate'] / medians[name]:.2f}"
                       for name in names if name != "candidate"]
    print("ratios: " + " ".join(ratios), flush=True)


def print_latency_table(workloads: list[str], names: list[str], fraction: float,
                        latencies: dict[tuple[str, str], list[Paced]]) -> None:
    """The fixed-rate runs: per server, its rate, and the medians of its rounds' latencies."""
    print(f"\nlatency at {fraction:.0%} of each server's own median req/s, from when each request was due:")
    print(f"{'workload':<12} {'server':<18} {'rate':>7} {'answered/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>7} {'send lag p99':>12}  kept up")
    for workload in workloads:
        for name in names:
            runs = latencies.get((workload, name), [])
            if not runs:
                continue
            achieved, p50 = statistics.median(r.achieved for r in runs), statistics.median(r.p50_ms for r in runs)
            p99, lag = statistics.median(r.p99_ms for r in runs), statistics.median(r.send_lag_p99_ms for r in runs)
            # NOTE: rounds that answered less than 97% of their rate (the last answers come one latency after
            #   the last request was due) were overloaded, by the server or the generator: their latencies
            #   measure a queue that grew for the whole round, not the server at that rate.
            kept_up = "yes" if achieved >= 0.97 * runs[0].rate else "NO"
            print(f"{workload:<12} {name:<18} {runs[0].rate:>7.0f} {achieved:>10.0f} {p50:>8.2f} {p99:>8.2f} "
                  f"{sum(r.errors for r in runs):>7} {lag:>12.2f}  {kept_up}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per server and round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each figure is their median (default 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="seconds of unmeasured load before each measurement (default 1)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated, default: all")
    parser.add_argument("--only", default=",".join(SERVERS), help="comma-separated servers, default: all")
    parser.add_argument("--latency-at", type=float, default=0.0, metavar="FRACTION",
                        help="after each workload's throughput rounds, drive each server at this fraction of its "
                             "own median req/s (e.g. 0.8) with paced_load.py, --rounds times, and report latency")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help=f"where the peers, bodies and tools are prepared (default {DEFAULT_CACHE})")
    args = parser.parse_args()
    if args.seconds < 1 or args.rounds < 1 or args.warmup < 0 or not 0 <= args.latency_at < 1:
        parser.error("--seconds and --rounds must be at least 1, --warmup at least 0, --latency-at in [0, 1)")

    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so the servers are stopped.
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        workloads = choose(args.workloads, WORKLOADS, "workloads")
        names = choose(args.only, SERVERS, "servers")
        cache = Cache(args.cache_dir.expanduser().resolve())
        bodies = prepare(cache, workloads, names)
        print(versions(cache, names), file=sys.stderr, flush=True)
        results: dict[tuple[str, str], list[Result]] = {(w, n): [] for w in workloads for n in names}
        latencies: dict[tuple[str, str], list[Paced]] = {}
        with tempfile.TemporaryDirectory(prefix="statefun-workers-bench-") as tmp:
            scratch = Path(tmp)
            commands = server_commands(cache, scratch)
            with running(names, commands, scratch) as servers:
                for server in servers.values():
                    wait_ready(server, bodies[workloads[0]][0])
                for workload in workloads:
                    sanity(servers, workload, bodies[workload][0])
                print(f"sanity: {', '.join(names)} answer 200 application/octet-stream; SDK answers equal the "
                      "candidate's", file=sys.stderr, flush=True)
                for workload in workloads:
                    for round_ in range(1, args.rounds + 1):
                        for name in names:
                            if args.warmup:
                                wrk(servers[name], cache.bodies(workload), args.warmup)
                            result = wrk(servers[name], cache.bodies(workload), args.seconds)
                            results[(workload, name)].append(result)
                            print(f"  {workload} round {round_}/{args.rounds} {name}: {result.rps:.0f} req/s, "
                                  f"p99 {result.p99_ms:.2f} ms, {result.errors} errors", file=sys.stderr, flush=True)
                            if servers[name].process.poll() is not None:
                                raise BenchError(f"{name} exited during the run; its log:\n"
                                                 f"{servers[name].log_tail()}")
                    for round_ in range(1, args.rounds + 1) if args.latency_at else ():
                        for name in names:
                            rate = args.latency_at * statistics.median(r.rps for r in results[(workload, name)])
                            run = paced(servers[name], cache.bodies(workload), rate, args.seconds)
                            latencies.setdefault((workload, name), []).append(run)
                            print(f"  {workload} paced round {round_}/{args.rounds} {name}: {run.achieved:.0f} of "
                                  f"{rate:.0f} req/s, p99 {run.p99_ms:.2f} ms, {run.errors} errors, send lag p99 "
                                  f"{run.send_lag_p99_ms:.2f} ms", file=sys.stderr, flush=True)
        print_table(workloads, names, results)
        if args.latency_at:
            print_latency_table(workloads, names, args.latency_at, latencies)
        return 0
    except BenchError as ex:
        print(f"side_by_side: {ex}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("side_by_side: interrupted; servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
