"""Bodies of deeply nested groups, in every position of a ToFunction, are answered 400 by a real pool, and the
worker that read them lives on (a reader that recursed once per level overflowed the C stack of a compiled
worker: SIGSEGV)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fuzz.builds import pure_copy
from fuzz.make_corpus import POSITIONS, groups
from tests import server_process
from tests.server_process import poll
from tests.support import REPO

from .wire import greeter_request

pytestmark = pytest.mark.server


def _compiled(pid: int) -> bool:
    """Whether the worker has the mypyc extensions loaded."""
    return "_compiled__mypyc" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("build", ["compiled", "pure"])
def test_nested_group_bodies_are_400_and_the_workers_live_on(start_server, tmp_path: Path, build: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if build == "pure":  # serve from a copy of the checkout whose package has no extensions
        served = pure_copy(tmp_path / "pure")
        for name in ("app.py", "gunicorn.conf.py", "examples"):
            (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, served / name)
        monkeypatch.setattr(server_process, "REPO", served)
    server = start_server(workers=2)
    workers = server.worker_pids()
    assert all(_compiled(pid) == (build == "compiled") for pid in workers)
    conn = server.connect()
    try:
        for where, (_, wrap) in POSITIONS.items():
            status, _, body = server.post(wrap(groups(50_000)), conn=conn)
            assert status == 400, (where, status, body[:300])
            assert b"malformed_request" in body, (where, body[:300])
            assert server.post(greeter_request("after", seen=1), conn=conn)[0] == 200, where
    finally:
        conn.close()
    assert server.worker_pids() == workers
    if build == "compiled":  # the pure build reads with protobuf's parser, which words it otherwise
        poll(lambda: "nested more than 100 deep" in server.log())
    # A new connection each, which either worker may take.
    for _ in range(4):
        assert server.post(POSITIONS["top"][1](groups(50_000)))[0] == 400
    assert server.worker_pids() == workers
    assert server.post(greeter_request("finally", seen=2))[0] == 200
