"""Directory preparation, folding dead workers into the archive, locked scrapes; simulated pids, no fork."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statefun_workers import metrics, multiprocess
from statefun_workers.metrics import Recorder

from .results import batch_result
from .scrapes import Samples, scrape_dir

T = "test/fn"
OK = ("statefun_invocations_total", (("outcome", "ok"), ("typename", T)))
EXITS = ("statefun_worker_exits_total", ())
LIVE = ("statefun_worker_processes", ())


def worker(path: str, pid: int, batches: int, invocations: int = 2) -> Recorder:
    rec = Recorder(directory=path, pid=pid, interval=None)
    rec.start([T])
    for _ in range(batches):
        rec.request_started()
        rec.request_finished(batch_result(invocations=invocations), 0.0002, 50)
    rec.flush()
    return rec


def test_prepare_wipes_db_files_only(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path)
    monkeypatch.setattr(multiprocess.values, "ValueClass", multiprocess.values.ValueClass)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", path)
    for name in ("counter_1.db", "histogram_archive.db", "counter_archive.db.tmp", "keep.txt"):
        open(os.path.join(path, name), "w").close()
    assert multiprocess.prepare_directory(path) == path
    assert sorted(os.listdir(path)) == sorted(["keep.txt", multiprocess.LOCK_FILE])
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
    assert multiprocess.values.ValueClass._multiprocess


def test_prepare_keeps_files_for_a_reexecuted_master(mpdir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    worker(mpdir, 1, 3).stop()
    monkeypatch.setenv("GUNICORN_PID", "1")
    multiprocess.prepare_directory(mpdir)
    assert scrape_dir(mpdir)[OK] == 6


def test_dead_worker_is_folded_into_the_archive(mpdir: str, scrape: Callable[[], Samples]) -> None:
    a, b = worker(mpdir, 11, 3), worker(mpdir, 12, 4)
    before = scrape()
    assert before[OK] == 14 and before[LIVE] == 2
    a.stop()
    multiprocess.mark_process_dead(11, mpdir)
    after = scrape()
    assert after[OK] == 14 and after[LIVE] == 1 and after[EXITS] == 1
    # everything but the live gauges and the exit counter is unchanged, histograms included
    assert {k: v for k, v in after.items() if k not in (LIVE, EXITS)} == {
        k: v for k, v in before.items() if k not in (LIVE, EXITS)
    }
    assert not [f for f in os.listdir(mpdir) if f.endswith("_11.db")]
    b.stop()


def test_files_stay_flat_over_churn(mpdir: str, scrape: Callable[[], Samples]) -> None:
    for pid in range(1000, 1200):
        worker(mpdir, pid, 1).stop()
        multiprocess.mark_process_dead(pid, mpdir)
    s = scrape()
    assert s[OK] == 400 and s[EXITS] == 200 and s.get(LIVE, 0) == 0
    assert sorted(f for f in os.listdir(mpdir) if f.endswith(".db")) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]


def test_scrape_waits_for_a_merge_in_progress(mpdir: str) -> None:
    """While the master holds the exclusive lock, a scrape blocks instead of reading a half-merged state."""
    worker(mpdir, 21, 2).stop()
    fd = os.open(os.path.join(mpdir, multiprocess.LOCK_FILE), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    result: list[Samples] = []
    t = threading.Thread(target=lambda: result.append(scrape_dir(mpdir)))
    t.start()
    time.sleep(0.2)
    assert not result  # blocked
    os.close(fd)
    t.join(5)
    assert result[0][OK] == 4


def test_exit_counter_key_matches_the_declared_family() -> None:
    from prometheus_client.mmap_dict import mmap_key

    help_text = metrics.FAMILIES["statefun_worker_exits"][1]
    assert multiprocess._EXITS_KEY == mmap_key(
        "statefun_worker_exits", "statefun_worker_exits_total", [], [], help_text
    )


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["record", "die", "scrape"]), st.integers(0, 3), st.integers(1, 5)),
        max_size=40,
    )
)
def test_counters_are_exact_and_monotonic_under_any_churn(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]
) -> None:
    path = str(tmp_path_factory.mktemp("mp"))
    live: dict[int, Recorder] = {}
    next_pid = [1]
    expected = 0
    last = 0.0

    def slot(i: int) -> Recorder:
        if i not in live:
            live[i] = Recorder(directory=path, pid=next_pid[0], interval=None)
            live[i].start()
            next_pid[0] += 1
        return live[i]

    for op, i, n in ops:
        if op == "record":
            rec = slot(i)
            for _ in range(n):
                rec.request_started()
                rec.request_finished(batch_result(invocations=1), 0.001)
            expected += n
            rec.flush()
        elif op == "die" and i in live:
            rec = live.pop(i)
            rec.stop()
            multiprocess.mark_process_dead(rec._sink.pid if rec._sink else 0, path)  # type: ignore[union-attr]
        else:
            value = scrape_dir(path).get(OK, 0.0)
            assert value >= last
            last = value
    for rec in live.values():
        rec.stop()
    assert scrape_dir(path).get(OK, 0.0) == expected


def test_a_temporary_directory_made_at_start_is_removed_at_master_exit(tmp_path):
    """Without PROMETHEUS_MULTIPROC_DIR the master makes a temporary directory; its on_exit hook removes it
    (a named directory is left alone). Run in a subprocess: the start-up changes process-wide state."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from statefun_workers import multiprocess\n"
        "made = multiprocess.prepare_directory()\n"
        "assert os.path.isdir(made)\n"
        "multiprocess.on_exit(None)\n"
        "print(made, os.path.exists(made))\n"
        "named = multiprocess.prepare_directory(sys.argv[1])\n"
        "multiprocess.on_exit(None)\n"
        "print(named, os.path.exists(named))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "named")], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    (made, made_exists), (named, named_exists) = (line.split() for line in done.stdout.splitlines())
    assert "statefun-metrics-" in made and made_exists == "False"
    assert named == str(tmp_path / "named") and named_exists == "True"
