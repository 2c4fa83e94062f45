"""The ``statefun-workers`` command: serve, check and describe the functions of an installed package.

    statefun-workers serve MODULE:ATTR [gunicorn options]    gunicorn with the packaged configuration
    statefun-workers check MODULE:ATTR                        import, validate, list typenames and state
    statefun-workers module-yaml MODULE:ATTR --url URL        the runtime's endpoint documents for them

``MODULE:ATTR`` is what ``STATEFUN_FUNCTIONS`` takes (a comma-separated list; a bare module means
``module:functions``). As with gunicorn, the current directory is on the module search path. Settings come from
the environment (``PORT``, ``WEB_CONCURRENCY``, ``STATEFUN_*``: docs/server.md).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from datetime import timedelta

from . import StatefulFunctions, build_info
from .errors import ConfigurationError
from .loading import load_functions
from .settings import Settings
from .startup import reported_start_errors

__all__ = ["main", "module_yaml"]

APPLICATION = "statefun_workers.asgi:application"

RUNTIME_TTL_JITTER_SECONDS = 3
"""The runtime adds up to this much to ``pool_ttl`` before it closes an idle pooled connection."""
CALL_MARGIN_SECONDS = 30
"""What ``call`` adds to the longest a healthy pool can hold a batch (worker timeout, drain, graceful stop)."""


def _serve(spec: str, gunicorn_args: Sequence[str]) -> None:
    """Replace this process with gunicorn (so signals and the exit status are gunicorn's own)."""
    os.environ["STATEFUN_FUNCTIONS"] = spec
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:statefun_workers.gunicorn_config", *gunicorn_args,
            APPLICATION]
    os.execv(sys.executable, argv)


def _load(spec: str, command: str) -> tuple[Settings, StatefulFunctions]:
    """The settings and the merged registry, as the server would load them; a failure is the start-up line."""
    with reported_start_errors(command):
        sys.path.insert(0, os.getcwd())
        settings = Settings.from_env()
    with reported_start_errors(command, argument=True):
        return settings, load_functions(spec)


def _check(spec: str) -> None:
    _, functions = _load(spec, "check")
    build_info.serve_typenames(functions.functions)
    facts = build_info.labels()
    print(f"statefun-workers {facts['version']}, compiled={facts['compiled']}, Python {facts['python']}, "
          f"protobuf {facts['protobuf']} ({facts['protobuf_backend']})")
    print(f"{spec}: {len(functions.functions)} function(s)")
    for typename in sorted(functions.functions):
        function = functions.functions[typename]
        kind = "async" if function.is_async else "sync, blocking" if function.blocking else "sync"
        print(f"  {typename} ({kind})")
        for spec_ in function.specs:
            ttl = timedelta(milliseconds=spec_.duration)
            ttl_text = (f", expires {ttl} after the last call" if spec_.after_call
                        else f", expires {ttl} after the last write" if spec_.after_write else "")
            print(f"    state {spec_.name}: {spec_.type.typename}{ttl_text}")


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def module_yaml(functions: StatefulFunctions, url: str, settings: Settings) -> str:
    """The runtime's ``io.statefun.endpoints.v2/http`` documents, one per namespace bound, as YAML text.

    The transport agrees with the server's own settings: the runtime closes idle pooled connections before
    the server's keep-alive does (``pool_ttl``), a call outlasts what a healthy pool can hold a batch
    (``call``), and the largest response accepted is the largest request the server accepts.
    """
    pool_ttl = math.floor(settings.keepalive) - RUNTIME_TTL_JITTER_SECONDS - 2
    if pool_ttl < 1:
        raise ConfigurationError(f"STATEFUN_KEEPALIVE={settings.keepalive:g} s leaves the runtime's connection pool no "
                         f"idle time that ends first; use at least {RUNTIME_TTL_JITTER_SECONDS + 3} s")
    longest_hold = settings.timeout + settings.drain_seconds + settings.graceful_timeout
    call = max(120, math.ceil(longest_hold) + CALL_MARGIN_SECONDS)
    template = url if "{function.name}" in url else url.rstrip("/") + "/statefun/{function.name}"
    namespaces = sorted({function.namespace for function in functions.functions.values()})
    documents = [
        "# Endpoints of the functions bound by statefun-workers; transport chosen against the server's settings:\n"
        f"#   call {_duration(call)} >= STATEFUN_TIMEOUT + STATEFUN_DRAIN_SECONDS + STATEFUN_GRACEFUL_TIMEOUT "
        f"({longest_hold:g} s) + {CALL_MARGIN_SECONDS} s\n"
        f"#   pool_ttl {pool_ttl}s (+ up to {RUNTIME_TTL_JITTER_SECONDS} s) < STATEFUN_KEEPALIVE "
        f"({settings.keepalive:g} s): the runtime closes idle connections first\n"
        f"#   payload_max_bytes = STATEFUN_MAX_REQUEST_BYTES"
    ]
    for namespace in namespaces:
        documents.append(
            "kind: io.statefun.endpoints.v2/http\n"
            "spec:\n"
            f"  functions: {namespace}/*\n"
            f"  urlPathTemplate: {template}\n"
            "  maxNumBatchRequests: 1000\n"
            "  transport:\n"
            "    type: io.statefun.transports.v1/async\n"
            f"    call: {_duration(call)}\n"
            "    connect: 10s\n"
            f"    pool_ttl: {pool_ttl}s\n"
            "    pool_size: 1024\n"
            f"    payload_max_bytes: {settings.max_request_bytes}")
    return documents[0] + "\n" + "\n---\n".join(documents[1:]) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statefun-workers", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the functions with gunicorn (the packaged configuration)")
    serve.add_argument("functions", metavar="MODULE:ATTR")
    serve.add_argument("gunicorn_args", nargs=argparse.REMAINDER, metavar="...",
                       help="passed to gunicorn, e.g. -b 127.0.0.1:8000")
    check = commands.add_parser("check", help="import and validate the functions; list typenames and state")
    check.add_argument("functions", metavar="MODULE:ATTR")
    yaml = commands.add_parser("module-yaml", help="print the runtime's module.yaml endpoint documents")
    yaml.add_argument("functions", metavar="MODULE:ATTR")
    yaml.add_argument("--url", required=True,
                      help="where the runtime reaches the server, e.g. http://functions:8000 "
                           "(/statefun/{function.name} is added unless the URL has {function.name})")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve(args.functions, args.gunicorn_args)
    elif args.command == "check":
        _check(args.functions)
    else:
        settings, functions = _load(args.functions, "module-yaml")
        with reported_start_errors("module-yaml"):
            text = module_yaml(functions, args.url, settings)
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
