# Two commands do everything on a fresh machine with Python 3.10+ and make:
#   make serve   serve the example functions on :8000 (gunicorn -c gunicorn.conf.py app)
#   make test    install what the tests need and run the whole suite (what .ci/run runs)
#   make runtime the real StateFun runtime in one JVM against `make serve` (docs/runtime.md; Java 17, Maven)
PYTHON ?= python3
VENV := .venv
PROTOBUF_MIN_VENV := .venv-protobuf-min
UPSTREAM_MIN_VENV := .venv-upstream-min
# The lowest version of each server dependency pyproject.toml allows (tests/test_upstream_range.py checks that
# they agree); the main venv resolves the highest.
UPSTREAM_FLOORS := uvicorn==0.53.0 uvicorn-worker==0.4.0 falcon==4.0.0 prometheus-client==0.20.0 gunicorn==23.0.0 \
  httptools==0.6.0 uvloop==0.19.0
PY := $(VENV)/bin/python
# The modules setup.py compiles with mypyc (statefun_workers/build_info.py's COMPILED_MODULES, the one list);
# an edit to one of them rebuilds the extensions.
COMPILED := $(shell $(PYTHON) -c 'import ast; tree = ast.parse(open("statefun_workers/build_info.py").read()); \
  print(*[f"statefun_workers/{n}.py" for s in tree.body if isinstance(s, ast.Assign) \
  and getattr(s.targets[0], "id", "") == "COMPILED_MODULES" for n in ast.literal_eval(s.value)])')
ifeq ($(strip $(COMPILED)),)
$(error no COMPILED_MODULES read from statefun_workers/build_info.py)
endif

.PHONY: serve runtime test test-fast build protos check-protos bench bench-peers fuzz system-deps clean

# What serving needs, and nothing else (make serve).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# NOTE: dependencies only; the .compiled rule below builds the extensions, once.
	STATEFUN_WORKERS_PURE_PYTHON=1 $(PY) -m pip install -q -e .
	touch $@

# The test toolchain on top (the official SDK, mypy, ruff, hadolint, build, twine...): make test and friends.
$(VENV)/.test-installed: $(VENV)/.installed
	STATEFUN_WORKERS_PURE_PYTHON=1 $(PY) -m pip install -q -e '.[test]'
	touch $@

# Recompile the mypyc extensions after an edit (the stale ones would otherwise shadow the new source).
$(VENV)/.compiled: $(VENV)/.installed setup.py $(COMPILED)
	$(PY) -m pip install -q --no-deps -e .
	touch $@

build: $(VENV)/.compiled

# The oldest protobuf runtime the core supports, with the core's other dependencies (orjson writes JSON values)
# and nothing else: tests/test_protobuf_range.py runs the core on it. Rebuilt when this list changes.
$(PROTOBUF_MIN_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(PROTOBUF_MIN_VENV)
	$(PROTOBUF_MIN_VENV)/bin/python -m pip install -q protobuf==3.20.3 mypy-extensions 'orjson>=3.9'
	touch $@

# The server's dependencies at their floors, and what the focused subset of tests needs; the package itself
# runs from the checkout (tests/test_upstream_range.py).
$(UPSTREAM_MIN_VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(UPSTREAM_MIN_VENV)
	$(UPSTREAM_MIN_VENV)/bin/python -m pip install -q $(UPSTREAM_FLOORS) 'protobuf>=3.20,<8' mypy-extensions \
	  orjson pytest hypothesis pyyaml flink-statefun==3.5.0
	touch $@

serve: $(VENV)/.compiled
	$(VENV)/bin/gunicorn -c gunicorn.conf.py app

system-deps:
	bash scripts/install-system-deps.sh

# The local StateFun runner (runtime/): compiled with Maven, which downloads its jars on first use.
RUNNER := runtime/target/.built
$(RUNNER): runtime/pom.xml $(shell find runtime/src -type f)
	$(PYTHON) runtime/runner.py build

runtime: $(RUNNER)
	$(PYTHON) runtime/runner.py run $(RUNTIME_ARGS)

test: $(VENV)/.test-installed $(VENV)/.compiled $(PROTOBUF_MIN_VENV)/.installed $(UPSTREAM_MIN_VENV)/.installed \
  system-deps $(RUNNER)
	$(PY) -m pytest

# The suite without the tests that start servers (quick feedback while editing).
test-fast: $(VENV)/.test-installed $(VENV)/.compiled
	$(PY) -m pytest -m 'not server and not slow'

protos: $(VENV)/.test-installed system-deps
	$(PY) scripts/gen_protos.py

check-protos: $(VENV)/.test-installed system-deps
	$(PY) scripts/gen_protos.py --check

bench: $(VENV)/.test-installed $(VENV)/.compiled
	$(PY) benchmarks/handler_bench.py

# Side by side with the official SDK (aiohttp, Flask), the JS SDK (Node) and the bare Falcon floor; installs
# the peers, node's package and wrk (apt) into a cache on first use (benchmarks/README.md).
BENCH_ARGS ?= --seconds 5 --rounds 3
bench-peers: $(VENV)/.test-installed $(VENV)/.compiled
	$(PY) benchmarks/side_by_side.py $(BENCH_ARGS)

# Coverage-guided fuzzing of the handler, compiled and pure-Python, FUZZ_RUNS inputs each (docs/fuzzing.md).
FUZZ_RUNS ?= 1000000
fuzz: $(VENV)/.test-installed $(VENV)/.compiled
	nice -n 10 $(PY) -m fuzz.campaign --runs $(FUZZ_RUNS)

clean:
	rm -rf $(VENV) $(PROTOBUF_MIN_VENV) $(UPSTREAM_MIN_VENV) .pytest_cache .hypothesis build *__mypyc*.so statefun_workers/*.so
