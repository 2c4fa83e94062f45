"""Settings, CPU quota, STATEFUN_FUNCTIONS loading, gunicorn settings and JSON logs, in-process."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import types
from pathlib import Path

import pytest

from statefun_workers import StatefulFunctions
from statefun_workers.cpu import available_cpus, cgroup_cpu_limit
from statefun_workers.errors import ConfigurationError
from statefun_workers.loading import load_functions, parse_sources
from statefun_workers.logs import JsonFormatter
from statefun_workers.settings import DEFAULT_FUNCTIONS, Settings


def test_settings_defaults() -> None:
    s = Settings.from_env({})
    assert (s.port, s.web_concurrency, s.functions) == (8000, None, DEFAULT_FUNCTIONS)
    assert s.max_request_bytes == 33554432
    assert (s.graceful_timeout, s.timeout, s.keepalive, s.drain_seconds) == (30.0, 60.0, 20.0, 0.0)
    assert s.keepalive > 18  # outlasts the runtime's pool TTL (15 s + up to 3 s)


@pytest.mark.parametrize(("name", "value"), [
    ("PORT", "eighty"), ("PORT", "70000"), ("WEB_CONCURRENCY", "0"), ("STATEFUN_MAX_REQUEST_BYTES", "-1"),
    ("STATEFUN_KEEPALIVE", "nan"), ("STATEFUN_DRAIN_SECONDS", "-2"), ("STATEFUN_LOG_LEVEL", "loud"),
    ("STATEFUN_GC_THRESHOLD", "10"), ("STATEFUN_BODY_TIMEOUT", "0"),
])
def test_settings_reject_bad_values_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_settings_read_values() -> None:
    s = Settings.from_env({"PORT": "9000", "WEB_CONCURRENCY": "3", "STATEFUN_DRAIN_SECONDS": "5s",
                           "STATEFUN_FUNCTIONS": " a:b ", "STATEFUN_LOG_LEVEL": "DEBUG"})
    assert (s.port, s.web_concurrency, s.drain_seconds) == (9000, 3, 5.0)
    assert (s.functions, s.log_level) == ("a:b", "debug")


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_cgroup(tmp_path, {"cpu.max": "150000 100000\n"})) == 1.5
    assert available_cpus(tmp_path) == min(2, len(__import__("os").sched_getaffinity(0)))


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_cgroup(tmp_path, {"cpu.max": "max 100000\n"})) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root = _cgroup(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "50000",
                              "cpu,cpuacct/cpu.cfs_period_us": "100000"})
    assert cgroup_cpu_limit(root) == 0.5
    assert available_cpus(root) == 1


def test_cgroup_v1_unlimited_and_missing(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_cgroup(tmp_path / "a", {"cpu/cpu.cfs_quota_us": "-1",
                                                      "cpu/cpu.cfs_period_us": "100000"})) is None
    assert cgroup_cpu_limit(tmp_path / "nothing") is None


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fake module ``fake_fns`` with registries ``one``, ``two`` (overlapping ``one``) and ``functions``."""
    module = types.ModuleType("fake_fns")
    for attribute, typenames in {"one": ["t/a"], "two": ["t/a", "t/b"], "functions": ["t/c"]}.items():
        registry = StatefulFunctions()
        for typename in typenames:
            registry.register(typename, lambda context, message: None)
        setattr(module, attribute, registry)
    module.not_a_registry = 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_fns", module)
    return module


def test_loading_merges_and_freezes(registries: types.ModuleType) -> None:
    merged = load_functions("fake_fns:one, fake_fns")  # a bare module means module:functions
    assert sorted(merged.functions) == ["t/a", "t/c"]
    with pytest.raises(ConfigurationError):
        merged.register("t/z", lambda context, message: None)


def test_loading_a_typename_bound_twice_names_both_sources(registries: types.ModuleType) -> None:
    with pytest.raises(ConfigurationError, match=r"'t/a'.*fake_fns:one.*fake_fns:two"):
        load_functions("fake_fns:one,fake_fns:two")


def test_loading_the_same_registry_twice_is_harmless(registries: types.ModuleType) -> None:
    assert sorted(load_functions("fake_fns:one,fake_fns:one").functions) == ["t/a"]


@pytest.mark.parametrize(("spec", "match"), [
    ("", "names no module"), ("bad module", "not 'module'"), ("no_such_module_xyz", "cannot import"),
    ("fake_fns:missing", "no attribute"),
    ("fake_fns:not_a_registry", "not a statefun_workers.StatefulFunctions"),
])
def test_loading_errors_are_clear(registries: types.ModuleType, spec: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        load_functions(spec)


def test_default_functions_are_the_examples() -> None:
    assert parse_sources(DEFAULT_FUNCTIONS) == [("examples", "functions")]
    served = load_functions(DEFAULT_FUNCTIONS).functions
    assert {"example/greeter", "com.example/user-shopping-cart", "com.example/stock"} <= set(served)


def _gunicorn_config(monkeypatch: pytest.MonkeyPatch, **env: str) -> types.ModuleType:
    for name in ("WEB_CONCURRENCY", "PORT", "STATEFUN_DRAIN_SECONDS", "STATEFUN_GRACEFUL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "statefun_workers.gunicorn_config", raising=False)
    return importlib.import_module("statefun_workers.gunicorn_config")


def test_gunicorn_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _gunicorn_config(monkeypatch, PORT="8123", WEB_CONCURRENCY="3", STATEFUN_DRAIN_SECONDS="5",
                           STATEFUN_GRACEFUL_TIMEOUT="20.5")
    assert cfg.bind == ["0.0.0.0:8123"] and cfg.workers == 3 and cfg.preload_app is True
    assert cfg.worker_class == "statefun_workers.worker.StatefunWorker"
    assert cfg.keepalive > 18 and cfg.graceful_timeout >= 5 + 21
    assert cfg.worker_tmp_dir == ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    for name in cfg.__all__:
        assert hasattr(cfg, name)


def test_gunicorn_workers_default_to_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _gunicorn_config(monkeypatch).workers == available_cpus()


def test_gunicorn_conf_py_only_reexports_the_package_module() -> None:
    text = (Path(__file__).resolve().parents[2] / "gunicorn.conf.py").read_text()
    code = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert code == ["from statefun_workers.gunicorn_config import *  # noqa: F403"]


def test_json_logs_are_one_line_with_the_traceback() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.getLogger("t").makeRecord("t", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                                   sys.exc_info(), extra={"typename": "a/b"})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "failed x" and entry["level"] == "error" and entry["typename"] == "a/b"
    assert "ValueError: boom" in entry["exc"]


@pytest.mark.parametrize(("name", "shown"), [("gunicorn.error", "gunicorn"), ("uvicorn.error", "uvicorn"),
                                             ("uvicorn.access", "uvicorn.access"), ("statefun_workers.server",
                                                                                    "statefun_workers.server")])
def test_json_logs_name_the_servers_without_their_error_suffix(name: str, shown: str) -> None:
    record = logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 1, "Booting worker", (), None)
    assert json.loads(JsonFormatter().format(record))["logger"] == shown


def test_log_throttle_logs_once_per_key_and_interval() -> None:
    from statefun_workers.logs import LogThrottle

    now = [100.0]
    throttle = LogThrottle(interval=10.0, clock=lambda: now[0])
    key = ("function_failed", "a/b", "ValueError")
    assert throttle.check(key) == (True, 0)
    assert throttle.check(key) == (False, 1)
    assert throttle.check(key) == (False, 2)
    assert throttle.check(("function_failed", "a/b", "KeyError")) == (True, 0)  # another kind: its own
    now[0] += 10.0
    assert throttle.check(key) == (True, 2)  # the interval passed: a traceback again, and how many were not
    assert throttle.check(key) == (False, 1)


def test_log_throttle_forgets_its_keys_at_its_bound() -> None:
    from statefun_workers.logs import LogThrottle

    throttle = LogThrottle(interval=10.0, clock=lambda: 0.0, max_keys=3)
    for key in range(10):
        assert throttle.check(key) == (True, 0)
        assert len(throttle._seen) <= 3
