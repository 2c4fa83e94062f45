# Two commands do everything on a fresh machine with Python 3.10+ and make:
#   make serve   serve the example functions on :8000 (gunicorn -c gunicorn.conf.py app)
#   make test    install what the tests need and run the whole suite (what .ci/run runs)
PYTHON ?= python3
VENV := .venv
PROTOC_VENV := .venv-protoc
PY := $(VENV)/bin/python

.PHONY: serve test test-fast protos check-protos bench system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# protoc 3.21.6 lives in a venv of its own: its protobuf pin (<5) conflicts with the oracle's (>=6.31).
$(PROTOC_VENV)/.installed:
	$(PYTHON) -m venv $(PROTOC_VENV)
	$(PROTOC_VENV)/bin/python -m pip install -q --upgrade pip
	$(PROTOC_VENV)/bin/python -m pip install -q --only-binary :all: grpcio-tools==1.49.1
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/gunicorn -c gunicorn.conf.py app

system-deps:
	bash scripts/install-system-deps.sh

test: $(VENV)/.installed $(PROTOC_VENV)/.installed system-deps
	STATEFUN_PROTOC_PYTHON=$(CURDIR)/$(PROTOC_VENV)/bin/python $(PY) -m pytest

# The suite without the tests that start servers (quick feedback while editing).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m 'not server and not slow'

protos: $(PROTOC_VENV)/.installed
	$(PROTOC_VENV)/bin/python scripts/gen_protos.py

check-protos: $(PROTOC_VENV)/.installed
	$(PROTOC_VENV)/bin/python scripts/gen_protos.py --check

bench: $(VENV)/.installed
	$(PY) benchmarks/handler_bench.py

clean:
	rm -rf $(VENV) $(PROTOC_VENV) .pytest_cache .hypothesis
