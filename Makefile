# Two commands do everything on a fresh machine with Python 3.10+ and make:
#   make serve   serve the example functions on :8000 (gunicorn -c gunicorn.conf.py app)
#   make test    install what the tests need and run the whole suite (what .ci/run runs)
PYTHON ?= python3
VENV := .venv
PROTOBUF_MIN_VENV := .venv-protobuf-min
PY := $(VENV)/bin/python

.PHONY: serve test test-fast protos check-protos bench system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The oldest protobuf runtime the core supports, alone: tests/test_protobuf_range.py runs the core on it.
$(PROTOBUF_MIN_VENV)/.installed:
	$(PYTHON) -m venv $(PROTOBUF_MIN_VENV)
	$(PROTOBUF_MIN_VENV)/bin/python -m pip install -q protobuf==3.20.3
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/gunicorn -c gunicorn.conf.py app

system-deps:
	bash scripts/install-system-deps.sh

test: $(VENV)/.installed $(PROTOBUF_MIN_VENV)/.installed system-deps
	STATEFUN_PROTOC_CHECK=1 STATEFUN_PROTOBUF_MIN_PYTHON=$(CURDIR)/$(PROTOBUF_MIN_VENV)/bin/python \
	$(PY) -m pytest

# The suite without the tests that start servers (quick feedback while editing).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m 'not server and not slow'

protos: $(VENV)/.installed system-deps
	$(PY) scripts/gen_protos.py

check-protos: $(VENV)/.installed system-deps
	$(PY) scripts/gen_protos.py --check

bench: $(VENV)/.installed
	$(PY) benchmarks/handler_bench.py

clean:
	rm -rf $(VENV) $(PROTOBUF_MIN_VENV) .pytest_cache .hypothesis
