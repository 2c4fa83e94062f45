# Two commands do everything on a fresh machine with Python 3.10+ and make:
#   make serve   serve the example functions on :8000 (gunicorn -c gunicorn.conf.py app)
#   make test    install what the tests need and run the whole suite (what .ci/run runs)
PYTHON ?= python3
VENV := .venv
PROTOBUF_MIN_VENV := .venv-protobuf-min
PY := $(VENV)/bin/python
# The modules setup.py compiles with mypyc; an edit to one of them rebuilds the extensions.
COMPILED := $(addprefix statefun_workers/,_wire.py types.py messages.py egress.py context.py _dispatch.py cells.py _read.py _tally.py _json.py)

.PHONY: serve test test-fast build protos check-protos bench bench-peers system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# NOTE: dependencies only; the .compiled rule below builds the extensions, once.
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

serve: $(VENV)/.compiled
	$(VENV)/bin/gunicorn -c gunicorn.conf.py app

system-deps:
	bash scripts/install-system-deps.sh

test: $(VENV)/.compiled $(PROTOBUF_MIN_VENV)/.installed system-deps
	STATEFUN_PROTOC_CHECK=1 STATEFUN_PROTOBUF_MIN_PYTHON=$(CURDIR)/$(PROTOBUF_MIN_VENV)/bin/python \
	$(PY) -m pytest

# The suite without the tests that start servers (quick feedback while editing).
test-fast: $(VENV)/.compiled
	$(PY) -m pytest -m 'not server and not slow'

protos: $(VENV)/.installed system-deps
	$(PY) scripts/gen_protos.py

check-protos: $(VENV)/.installed system-deps
	$(PY) scripts/gen_protos.py --check

bench: $(VENV)/.compiled
	$(PY) benchmarks/handler_bench.py

# Side by side with the official SDK (aiohttp, Flask), the JS SDK (Node) and the bare Falcon floor; installs
# the peers, node's package and wrk (apt) into a cache on first use (benchmarks/README.md).
BENCH_ARGS ?= --seconds 5 --rounds 3
bench-peers: $(VENV)/.compiled
	$(PY) benchmarks/side_by_side.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PROTOBUF_MIN_VENV) .pytest_cache .hypothesis build *__mypyc*.so statefun_workers/*.so
