"""Build and start the local StateFun runner: the real Apache Flink StateFun 3.3.0 runtime in one JVM.

    python runtime/runner.py build                 compile it (first use downloads the jars with Maven)
    python runtime/runner.py run [options] [key=value ...]

``run`` loads a module.yaml (default: deploy/statefun/module.yaml) with every endpoint URL's scheme, host and
port rewritten to ``--functions`` (default http://127.0.0.1:8000, where ``make serve`` listens) and nothing
else changed, and starts the job: messages in with ``POST /{namespace}/{type}/{id}`` on the ingress port,
egress records out with ``GET /{topic}`` on the egress port (docs/runtime.md). ``key=value`` arguments are
Flink or StateFun settings, such as ``execution.checkpointing.interval=1s``. The tests (tests/runtime/) use
the same functions. Only the standard library: it runs before the project's environment exists.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHIPPED_MODULE = REPO / "deploy" / "statefun" / "module.yaml"
CLASSES = HERE / "target" / "classes"
CLASSPATH_FILE = HERE / "target" / "classpath.txt"
BUILT = HERE / "target" / ".built"
MAIN_CLASS = "statefunworkers.runner.LocalRunner"

# Flink 1.16 predates Java 17 support: these are the opens and exports its own launcher passes on Java 17
# (without java.lang opened, building the job fails in Flink's ClosureCleaner).
_OPENS = ["java.base/java.lang", "java.base/java.net", "java.base/java.io", "java.base/java.nio",
          "java.base/sun.nio.ch", "java.base/java.lang.reflect", "java.base/java.text", "java.base/java.time",
          "java.base/java.util", "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic",
          "java.base/java.util.concurrent.locks"]
_EXPORTS = ["java.base/sun.net.util", "java.rmi/sun.rmi.registry", "jdk.compiler/com.sun.tools.javac.api",
            "jdk.compiler/com.sun.tools.javac.file", "jdk.compiler/com.sun.tools.javac.parser",
            "jdk.compiler/com.sun.tools.javac.tree", "jdk.compiler/com.sun.tools.javac.util",
            "java.security.jgss/sun.security.krb5"]
JVM_FLAGS = [
    # One small JVM: the serial collector and C1 only roughly halve the CPU a start-up costs on 2 cores.
    "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx512m", "-Xss1m",
    *(f"--add-opens={module}=ALL-UNNAMED" for module in _OPENS),
    *(f"--add-exports={module}=ALL-UNNAMED" for module in _EXPORTS),
]

_URL_TEMPLATE = re.compile(r"^(\s*urlPathTemplate:\s*)(https?://[^/\s]+)", re.MULTILINE)


def missing_tools() -> list[str]:
    """The programs the runner needs that are not on PATH."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


def _sources() -> list[Path]:
    return [HERE / "pom.xml", *sorted(p for p in (HERE / "src").rglob("*") if p.is_file())]


def is_built() -> bool:
    if not (BUILT.exists() and CLASSPATH_FILE.exists()):
        return False
    stamp = BUILT.stat().st_mtime
    return all(source.stat().st_mtime <= stamp for source in _sources())


def build(out: int | None = None) -> None:
    """Compile the runner and resolve its class path with Maven unless that is up to date.

    Maven's own download lines are the progress; the first build fetches about 90 MB from Maven Central.
    """
    if is_built():
        return
    missing = missing_tools()
    if missing:
        raise SystemExit(f"the StateFun runner needs {' and '.join(missing)} (Java 17 and Maven): "
                         f"run `make system-deps` or install them")
    cold = not CLASSPATH_FILE.exists()
    print("statefun runner: building runtime/ with Maven"
          + (" (first use: downloading about 90 MB of jars from Maven Central)" if cold else ""), flush=True)
    started = time.monotonic()
    done = subprocess.run(["mvn", "-B", "-f", str(HERE / "pom.xml"), "compile", "dependency:build-classpath",
                           f"-Dmdep.outputFile={CLASSPATH_FILE}"], stdout=out, stderr=out)
    if done.returncode != 0:
        raise SystemExit(f"statefun runner: the Maven build failed (exit {done.returncode}), see its output above")
    BUILT.touch()
    print(f"statefun runner: built in {time.monotonic() - started:.0f} s", flush=True)


def rewrite_hosts(module_yaml: str, functions_url: str) -> str:
    """The module with every endpoint's ``scheme://host[:port]`` replaced by ``functions_url``."""
    base = functions_url.rstrip("/")
    rewritten, count = _URL_TEMPLATE.subn(lambda m: m.group(1) + base, module_yaml)
    if count == 0:
        raise ValueError("the module has no urlPathTemplate to point at the functions")
    return rewritten


def command(module: Path, tmpdir: Path, settings: dict[str, str]) -> list[str]:
    """The java command line that runs ``module`` with the given Flink, StateFun and runner settings."""
    classpath = os.pathsep.join([str(CLASSES), CLASSPATH_FILE.read_text().strip()])
    arguments = {"statefun.remote.module-name": module.resolve().as_uri(), "io.tmp.dirs": str(tmpdir),
                 **settings}
    return ["java", *JVM_FLAGS, f"-Djava.io.tmpdir={tmpdir}", "-cp", classpath, MAIN_CLASS,
            *(f"{key}={value}" for key, value in arguments.items())]


def run(module_source: Path, functions_url: str, settings: dict[str, str]) -> int:
    """Run the job in the foreground until it fails for good or is interrupted; its own temp dir is removed."""
    build()
    tmpdir = Path(tempfile.mkdtemp(prefix="statefun-runner-"))
    try:
        module = tmpdir / "module.yaml"
        module.write_text(rewrite_hosts(module_source.read_text(), functions_url))
        print(f"statefun runner: {module_source} with endpoints at {functions_url}", flush=True)
        process = subprocess.Popen(command(module, tmpdir, settings))
        # SIGTERM to the launcher stops the JVM too (Ctrl-C reaches both through the terminal).
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            return process.wait()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("build", help="compile the runner (downloads its jars on first use)")
    start = sub.add_parser("run", help="start the runner in the foreground")
    start.add_argument("--module", type=Path, default=SHIPPED_MODULE, help="module.yaml to load")
    start.add_argument("--functions", default="http://127.0.0.1:8000",
                       help="base URL that replaces every endpoint's scheme://host:port")
    start.add_argument("--ingress-port", type=int, default=8090)
    start.add_argument("--egress-port", type=int, default=8091)
    start.add_argument("settings", nargs="*", metavar="key=value", help="Flink or StateFun settings")
    args = parser.parse_args(argv)
    if args.action == "build":
        build()
        return 0
    settings = dict(setting.split("=", 1) for setting in args.settings)
    settings.setdefault("runner.ingress.port", str(args.ingress_port))
    settings.setdefault("runner.egress.port", str(args.egress_port))
    return run(args.module, args.functions, settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
