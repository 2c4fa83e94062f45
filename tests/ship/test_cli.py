"""``statefun-workers module-yaml`` and the thin repository entry points, from this checkout's environment."""

from __future__ import annotations

import ast
import json
import sys

import yaml

from .commands import REPO, clean_env, run

URL = "http://statefun-functions.statefun.svc.cluster.local:8000"


def _module_yaml(spec: str, url: str = URL, check: bool = True, **env: str) -> object:
    return run([sys.executable, "-m", "statefun_workers.cli", "module-yaml", spec, "--url", url],
               env=clean_env(**env), cwd=REPO, check=check, timeout=120)


def _deployment_env() -> dict[str, str]:
    """The pool's environment in deploy/k8s/base/deployment.yaml (the values module.yaml was chosen against)."""
    documents = yaml.safe_load_all((REPO / "deploy" / "k8s" / "base" / "deployment.yaml").read_text())
    deployment = next(d for d in documents if d and d.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e and e["name"] != "PROMETHEUS_MULTIPROC_DIR"}


def _endpoints(text: str) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in yaml.safe_load_all(text)
                  if d and d["kind"] == "io.statefun.endpoints.v2/http")


def test_module_yaml_of_the_examples_is_the_deployed_module_yaml() -> None:
    """What deploy/statefun/module.yaml chose by hand, the command derives from the pool's own settings."""
    generated = _module_yaml("examples", **_deployment_env()).stdout  # type: ignore[attr-defined]
    assert _endpoints(generated) == _endpoints((REPO / "deploy" / "statefun" / "module.yaml").read_text())
    assert len(_endpoints(generated)) == 2


def test_module_yaml_follows_the_server_settings() -> None:
    text = _module_yaml("examples.greeter", url="http://fns:9000/{function.name}", STATEFUN_KEEPALIVE="40",
                        STATEFUN_TIMEOUT="120", STATEFUN_DRAIN_SECONDS="15",
                        STATEFUN_MAX_REQUEST_BYTES="1048576").stdout  # type: ignore[attr-defined]
    (document,) = [d for d in yaml.safe_load_all(text) if d]
    assert document["spec"]["functions"] == "example/*"
    assert document["spec"]["urlPathTemplate"] == "http://fns:9000/{function.name}"
    transport = document["spec"]["transport"]
    # call: 120 + 15 + 30 (graceful) + 30 margin = 195 s; pool_ttl: 40 - 3 (runtime jitter) - 2
    assert (transport["call"], transport["pool_ttl"], transport["payload_max_bytes"]) == ("195s", "35s", 1048576)


def test_module_yaml_refuses_a_keepalive_the_runtime_cannot_stay_under() -> None:
    done = _module_yaml("examples", check=False, STATEFUN_KEEPALIVE="5")
    assert done.returncode == 1 and done.stdout == ""  # type: ignore[attr-defined]
    (line,) = done.stderr.splitlines()  # type: ignore[attr-defined]
    assert "STATEFUN_KEEPALIVE=5 s" in json.loads(line)["msg"]


def test_app_py_only_reexports_the_packaged_application() -> None:
    """The repository's entry point stays thin (gunicorn.conf.py's twin test is in tests/server)."""
    body = ast.parse((REPO / "app.py").read_text()).body
    statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    assert [ast.unparse(s) for s in statements] == ["from statefun_workers.asgi import application",
                                                    "__all__ = ['application']"]


def test_python_dash_m_is_the_command() -> None:
    done = run([sys.executable, "-m", "statefun_workers", "check", "examples.greeter"], env=clean_env(), cwd=REPO)
    assert done.stdout.splitlines()[1:] == ["examples.greeter: 1 function(s)", "  example/greeter (sync)",
                                            "    state seen: io.statefun.types/int"]
