"""TLS and mTLS on the function port, and the plain admin port, on real gunicorn pools (docs/tls.md).

The certificates are made for each run by ``scripts/make-certs.sh`` (the openssl CLI, which
scripts/install-system-deps.sh installs): one CA for the pool and the runtime, and a second, unrelated CA
whose client certificate must be refused.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from statefun_workers.errors import ConfigurationError
from statefun_workers.settings import Settings
from statefun_workers.tls import server_context
from tests.server_process import E2E_DIR, Server, poll
from tests.support import REPO, free_port

from .wire import INT, greeter_request, parse

pytestmark = pytest.mark.server

MAKE_CERTS = REPO / "scripts" / "make-certs.sh"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Directories ``good`` (the pool's CA, server and client) and ``other`` (another CA and its client)."""
    assert shutil.which("openssl"), "openssl is needed (scripts/install-system-deps.sh installs it)"
    made = {}
    for name in ("good", "other"):
        directory = tmp_path_factory.mktemp(f"certs-{name}")
        subprocess.run(["bash", str(MAKE_CERTS), str(directory)], check=True, capture_output=True, timeout=60)
        made[name] = directory
    return made


def tls_env(certs: dict[str, Path], mtls: bool) -> dict[str, str]:
    good = certs["good"]
    env = {"STATEFUN_TLS_CERT_FILE": str(good / "server.crt"), "STATEFUN_TLS_KEY_FILE": str(good / "server.key")}
    if mtls:
        env["STATEFUN_TLS_CLIENT_CA_FILE"] = str(good / "ca.crt")
    return env


def client(certs: dict[str, Path], cert_from: str | None) -> ssl.SSLContext:
    """A client that checks the pool's certificate and name (127.0.0.1) and presents ``cert_from``'s client
    certificate, or none."""
    context = ssl.create_default_context(cafile=certs["good"] / "ca.crt")
    if cert_from == "server":  # the good CA's server certificate: not for client authentication
        context.load_cert_chain(certs["good"] / "server.crt", certs["good"] / "server.key")
    elif cert_from is not None:
        context.load_cert_chain(certs[cert_from] / "client.crt", certs[cert_from] / "client.key")
    return context


def post_greeter(server: Server, context: ssl.SSLContext) -> int:
    """POST a greeter batch over TLS; the answer must be the greeter's (state seen 3 -> 4)."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=context)
    try:
        status, _, body = server.post(greeter_request("Ada", seen=3), conn=conn)
        assert status == 200, body
        (mutation,) = parse(body).invocation_result.state_mutations
        assert mutation.state_name == "seen" and INT.deserialize(mutation.state_value.value) == 4
        assert isinstance(conn.sock, ssl.SSLSocket) and conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        return status
    finally:
        conn.close()


def test_tls_handshake_and_a_greeter_batch_over_https(start_server: Callable[..., Server], certs) -> None:
    server = start_server(workers=1, client_tls=client(certs, None), **tls_env(certs, mtls=False))
    assert post_greeter(server, client(certs, None)) == 200
    # The TLS port does not answer plain HTTP: a batch cannot arrive unencrypted.
    plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    with pytest.raises((OSError, http.client.HTTPException)):
        server.post(greeter_request("Ada", seen=3), conn=plain)
    plain.close()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, certs) -> Server:
    """A 2-worker pool requiring client certificates from the good CA, with a plain admin port (and a header
    count limit below the default, which the admin port must apply too)."""
    directory = tmp_path_factory.mktemp("mtls-server")
    env = {**tls_env(certs, mtls=True), "STATEFUN_ADMIN_PORT": str(free_port()), "STATEFUN_MAX_HEADERS": "20"}
    server = Server(env, directory / "gunicorn.log", workers=2, client_tls=client(certs, "good"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_mtls_accepts_a_client_certificate_from_the_configured_ca(mtls_server: Server, certs) -> None:
    assert post_greeter(mtls_server, client(certs, "good")) == 200


@pytest.mark.parametrize("cert_from", [None, "other", "server"],
                         ids=["no client certificate", "certificate of another CA", "a server certificate"])
def test_mtls_refuses_other_clients(mtls_server: Server, certs, cert_from: str | None) -> None:
    # NOTE: with TLS 1.3 the server judges the client certificate after the client's side of the handshake
    #   is done, so the refusal (an alert, then the close) reaches the client on its first read.
    #   Whether the client then sees the alert or only the close depends on timing: both are a refusal.
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        post_greeter(mtls_server, client(certs, cert_from))
    # The pool still serves the right client.
    assert post_greeter(mtls_server, client(certs, "good")) == 200


def test_probes_and_metrics_are_plain_on_the_admin_port(mtls_server: Server) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        for _ in range(4):  # new connections, so both workers answer some
            conn = mtls_server.connect(admin=True)
            try:
                status, headers, body = mtls_server.get(path, conn)
            finally:
                conn.close()
            assert status == 200, (path, body)
    assert b"statefun_requests_total" in body or b"statefun_" in body


@pytest.mark.parametrize("path", ["/statefun", "/statefun/greeter", "/", "/custom/path/greeter"])
def test_function_routes_are_404_on_the_admin_port(mtls_server: Server, path: str) -> None:
    conn = mtls_server.connect(admin=True)
    try:
        status, _, body = mtls_server.post(greeter_request("Ada", seen=3), path=path, conn=conn)
    finally:
        conn.close()
    assert status == 404, body


def test_admin_port_without_tls_keeps_the_function_port_as_it_was(start_server: Callable[..., Server]) -> None:
    server = start_server(workers=1, STATEFUN_ADMIN_PORT=str(free_port()))
    status, _, body = server.post(greeter_request("Ada", seen=3))
    assert status == 200 and parse(body).HasField("invocation_result")
    assert server.get("/healthz")[0] == 200
    conn = server.connect(admin=True)
    try:
        assert server.post(greeter_request("Ada"), conn=conn)[0] == 404
        assert server.get("/readyz", conn)[0] == 200
    finally:
        conn.close()


# ---- start-up refusals -------------------------------------------------------------------------------------

def run_gunicorn(env: dict[str, str], binds: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Start a pool that is expected to refuse to start, and return how it ended."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("STATEFUN_", "WEB_CONCURRENCY"))}
    full_env.update({"WEB_CONCURRENCY": "1", "PYTHONPATH": os.pathsep.join([str(E2E_DIR), str(REPO)]), **env})
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = [a for b in binds for a in ("-b", b)]
    return subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args, "app"],
                          cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("setting", ["STATEFUN_TLS_CERT_FILE", "STATEFUN_TLS_KEY_FILE",
                                     "STATEFUN_TLS_CLIENT_CA_FILE"])
def test_a_bad_certificate_path_stops_the_start_with_one_line_naming_the_setting(certs, setting: str) -> None:
    env = {**tls_env(certs, mtls=True), setting: "/nonexistent/tls/file.pem"}
    done = run_gunicorn(env, [f"127.0.0.1:{free_port()}"])
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0] and "does not exist" in lines[0], done.stderr


def test_an_admin_port_gunicorn_does_not_bind_stops_the_pool(certs) -> None:
    admin = free_port()
    done = run_gunicorn({"STATEFUN_ADMIN_PORT": str(admin)}, [f"127.0.0.1:{free_port()}"])
    assert done.returncode != 0
    assert f"STATEFUN_ADMIN_PORT is {admin} but gunicorn does not listen on it" in done.stderr, done.stderr


# ---- the settings and the context, without a server --------------------------------------------------------

def test_files_that_do_not_load_are_refused_naming_the_setting(certs, tmp_path: Path) -> None:
    good, other = certs["good"], certs["other"]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = {
        "STATEFUN_TLS_CERT_FILE": {"STATEFUN_TLS_CERT_FILE": str(garbage)},
        "STATEFUN_TLS_KEY_FILE": {"STATEFUN_TLS_KEY_FILE": str(other / "server.key")},  # not the cert's key
        "STATEFUN_TLS_CLIENT_CA_FILE": {"STATEFUN_TLS_CLIENT_CA_FILE": str(garbage)},
    }
    for setting, change in cases.items():
        env = {**tls_env(certs, mtls=True), **change}
        with pytest.raises(ConfigurationError, match=setting):
            server_context(Settings.from_env(env))
    context = server_context(Settings.from_env(tls_env(certs, mtls=True)))
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context(Settings.from_env({})) is None
    assert (good / "client.key").read_text().startswith("-----BEGIN PRIVATE KEY-----"), "PKCS#8 for Netty"


@pytest.mark.parametrize("env, message", [
    ({"STATEFUN_TLS_CERT_FILE": "CERT"}, "STATEFUN_TLS_KEY_FILE must be set too"),
    ({"STATEFUN_TLS_KEY_FILE": "KEY"}, "STATEFUN_TLS_CERT_FILE must be set too"),
    ({"STATEFUN_TLS_CLIENT_CA_FILE": "CA"}, "STATEFUN_TLS_CLIENT_CA_FILE needs STATEFUN_TLS_CERT_FILE"),
    ({"STATEFUN_TLS_CERT_FILE": "CERT", "STATEFUN_TLS_KEY_FILE": "KEY", "STATEFUN_TLS_REQUIRE_CLIENT_CERT": "1"},
     "STATEFUN_TLS_REQUIRE_CLIENT_CERT needs STATEFUN_TLS_CLIENT_CA_FILE"),
    ({"STATEFUN_TLS_REQUIRE_CLIENT_CERT": "maybe"}, "STATEFUN_TLS_REQUIRE_CLIENT_CERT must be true or false"),
    ({"STATEFUN_TLS_CERT_FILE": "DIR", "STATEFUN_TLS_KEY_FILE": "KEY"}, "STATEFUN_TLS_CERT_FILE must name a file"),
    ({"STATEFUN_ADMIN_PORT": "8000"}, "STATEFUN_ADMIN_PORT must differ from PORT"),
    ({"STATEFUN_ADMIN_PORT": "70000"}, "STATEFUN_ADMIN_PORT must be between 1 and 65535"),
])
def test_half_configured_tls_is_refused(certs, env: dict[str, str], message: str) -> None:
    files = {"CERT": str(certs["good"] / "server.crt"), "KEY": str(certs["good"] / "server.key"),
             "CA": str(certs["good"] / "ca.crt"), "DIR": str(certs["good"])}
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({k: files.get(v, v) for k, v in env.items()})


def test_client_certificates_are_optional_when_asked(certs) -> None:
    env = {**tls_env(certs, mtls=True), "STATEFUN_TLS_REQUIRE_CLIENT_CERT": "false"}
    settings = Settings.from_env(env)
    assert settings.tls_require_client_cert is False
    context = server_context(settings)
    assert context is not None and context.verify_mode == ssl.CERT_OPTIONAL
    assert Settings.from_env(tls_env(certs, mtls=True)).tls_require_client_cert is True


def test_the_admin_port_turns_unready_while_the_function_port_drains(start_server: Callable[..., Server]) -> None:
    """SIGTERM: the kubelet's readiness probe, on the admin port, sees 503 while batches are still served."""
    server = start_server(workers=1, STATEFUN_ADMIN_PORT=str(free_port()), STATEFUN_DRAIN_SECONDS="3")
    server.signal(signal.SIGTERM)

    def unready() -> bool:
        conn = server.connect(admin=True)
        try:
            return server.get("/readyz", conn)[0] == 503
        finally:
            conn.close()

    poll(unready, timeout=2.5)
    assert server.post(greeter_request("Ada", seen=3))[0] == 200


def test_sighup_makes_the_workers_load_a_rotated_certificate(start_server: Callable[..., Server], certs,
                                                             tmp_path: Path) -> None:
    """docs/tls.md: workers read the files when they start; SIGHUP replaces them, and they load the new ones."""
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.crt", "server.key"):
        shutil.copy(certs["good"] / name, live / name)
    env = {"STATEFUN_TLS_CERT_FILE": str(live / "server.crt"), "STATEFUN_TLS_KEY_FILE": str(live / "server.key")}
    server = start_server(workers=1, client_tls=client(certs, None), **env)
    # The Secret is updated in place: the running worker keeps the certificate it loaded.
    for name in ("server.crt", "server.key"):
        shutil.copy(certs["other"] / name, live / name)
    trusts_other = ssl.create_default_context(cafile=certs["other"] / "ca.crt")
    with pytest.raises(ssl.SSLCertVerificationError):
        post_greeter(server, trusts_other)
    old_workers = server.worker_pids()
    server.signal(signal.SIGHUP)
    poll(lambda: server.worker_pids() and not server.worker_pids() & old_workers, timeout=15)

    def serves_the_new_certificate() -> bool:
        try:
            return post_greeter(server, trusts_other) == 200
        except OSError:
            return False

    poll(serves_the_new_certificate, timeout=15)


def test_the_admin_port_has_the_function_port_s_http_limits(mtls_server: Server) -> None:
    """The admin port is client-facing too: the same header bounds apply there (431, not a worker's memory)."""
    conn = mtls_server.connect(admin=True)
    try:
        conn.putrequest("GET", "/healthz")
        for i in range(50):  # over STATEFUN_MAX_HEADERS (20 here), under the default
            conn.putheader(f"x-filler-{i}", "y")
        conn.endheaders()
        assert conn.getresponse().status == 431
    finally:
        conn.close()


def test_a_client_that_never_finishes_the_handshake_is_closed_after_the_head_timeout(
        start_server: Callable[..., Server], certs) -> None:
    """A TLS handshake is part of receiving the request head: STATEFUN_HEADER_TIMEOUT bounds it too, not the
    event loop's 60 s."""
    server = start_server(workers=1, client_tls=client(certs, None), STATEFUN_HEADER_TIMEOUT="1",
                          **tls_env(certs, mtls=False))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by the server, with nothing sent
        assert time.monotonic() - started < 5


def test_a_flood_of_the_function_port_leaves_the_admin_port_room(start_server: Callable[..., Server]) -> None:
    server = start_server(workers=1, STATEFUN_ADMIN_PORT=str(free_port()), STATEFUN_MAX_CONNECTIONS="4")
    held = [server.connect() for _ in range(4)]
    try:
        for conn in held:
            assert server.post(greeter_request("held"), conn=conn)[0] == 200
        # The function port is full: a fifth connection is answered 503 as it opens. Read it without sending:
        # the server closes at once, and a request still being sent would meet a reset instead.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as extra:
            assert extra.recv(4096).startswith(b"HTTP/1.1 503 ")
        admin = server.connect(admin=True)
        try:
            assert server.get("/healthz", admin)[0] == 200  # the probe still gets in
        finally:
            admin.close()
    finally:
        for conn in held:
            conn.close()
