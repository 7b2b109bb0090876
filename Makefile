# Everything a user or CI needs: `make run`, `make test` (README). Idempotent.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST  := $(PY) -m pytest
CONFIG  ?= examples/infernode.yaml

.PHONY: setup run test test-unit bench gpu-check docs clean

setup: os $(STAMP)

.PHONY: os
os:
	@bash scripts/setup-os.sh

# The venv sees the OS's site-packages so that bcc (python3-bpfcc) is importable.
$(STAMP): pyproject.toml
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

run: setup
	$(VENV)/bin/infernode run --config $(CONFIG)

test: setup
	$(PYTEST) -m "not bench" tests

test-unit: setup
	$(PYTEST) -m "not bench and not integration" tests

bench: setup
	$(PYTEST) -m bench -s tests/bench

gpu-check: setup
	$(PY) -m tests.gpu_check

docs: setup
	$(VENV)/bin/infernode docs --write

clean:
	rm -rf $(VENV) build *.egg-info
