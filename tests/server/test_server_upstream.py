"""The start-up check of the upstream internals the server uses (statefun_workers/upstream.py)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from statefun_workers import upstream
from statefun_workers.startup import describe

PACKAGE = Path(upstream.__file__).resolve().parent
USERS = ("http_protocol.py", "worker.py", "metrics.py", "multiprocess.py")


def test_the_installed_versions_have_every_internal_used() -> None:
    upstream.check()


def test_a_missing_internal_stops_the_start_naming_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    used = upstream.USED + (("uvicorn", "uvicorn.server", "Server", ("handle_exit", "gone_in_this_release")),
                            ("prometheus-client", "prometheus_client.values", None, ("NoSuchValue",)))
    monkeypatch.setattr(upstream, "USED", used)
    with pytest.raises(upstream.UpstreamError) as raised:
        upstream.check()
    message = str(raised.value)
    version = importlib.metadata.version("uvicorn")
    assert f"uvicorn {version} lacks uvicorn.server.Server.gone_in_this_release" in message
    assert (f"prometheus-client {importlib.metadata.version('prometheus-client')} lacks "
            f"prometheus_client.values.NoSuchValue") in message
    assert "handle_exit" not in message
    cause, hint = describe(raised.value)
    assert cause == message and "pip" in hint


def test_every_listed_internal_is_one_the_code_uses() -> None:
    """The list stays the code's: a name no module of the package mentions any more is stale."""
    code = "\n".join((PACKAGE / name).read_text() for name in USERS)
    for _distribution, _module, class_name, names in upstream.USED:
        for name in (*names, *([class_name] if class_name else [])):
            assert re.search(rf"\b{re.escape(name)}\b", code), f"{name} is listed but not used"
