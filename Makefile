# Everything a user or CI needs: `make run`, `make test` (README). Idempotent.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST  := $(PY) -m pytest
CONFIG  ?= examples/infernode.yaml

.PHONY: setup run demo lint test test-fleet test-unit test-random bench soak gpu-check docs clean

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

# The agent explaining a simulated vLLM worker's slow requests (scripts/demo.py):
# no GPU needed; as root the CPU hog's run-queue wait is measured with eBPF too.
demo: setup
	$(PY) scripts/demo.py

# The lint gate, configured in pyproject.toml: ruff (style, imports, annotations),
# mypy (types), vulture (unused code; .ci/vulture_whitelist.py says why each
# reported name stays).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/vulture agent collectors tuning .ci/vulture_whitelist.py --min-confidence 60 \
	    --ignore-decorators "@field_validator,@model_validator,@*.command,@*.group" --ignore-names model_config

# In file order; test-random checks that tests do not depend on it. The multi-host
# Ansible rollout (two booted hosts a test, ~2.5 min) is `make test-fleet`, so that
# `make test` stays under 10 minutes; CI runs both.
test: setup lint
	$(PYTEST) -p no:randomly -m "not bench and not soak and not fleet" tests

test-fleet: setup
	$(PYTEST) -p no:randomly -m fleet tests

test-unit: setup
	$(PYTEST) -p no:randomly -m "not bench and not soak and not fleet and not integration" tests

# A random sample of the suite in random order (pytest-randomly); the header prints
# the seed that draws the same sample again (SEED=S make test-random).
SAMPLE ?= 80
SEED   ?= default
test-random: setup
	$(PYTEST) -p randomly --randomly-seed=$(SEED) -m "not bench and not soak" --sample-tests $(SAMPLE) tests

bench: setup
	$(PYTEST) -p no:randomly -m bench -s tests/bench

# 30 minutes of mixed load on one agent (SOAK_MINUTES=N for another length);
# the time series goes to SOAK_REPORT (default /tmp/infernode-soak.json).
soak: setup
	$(PYTEST) -p no:randomly -m soak -s --timeout=0 tests/soak

gpu-check: setup
	$(PY) -m tests.gpu_check

docs: setup
	$(VENV)/bin/infernode docs --write

clean:
	rm -rf $(VENV) build *.egg-info
