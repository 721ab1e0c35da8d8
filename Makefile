# `make demo` sets everything up and runs a vertical's quick demo; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
VERTICAL ?= fraud_transactions
PLUGINS := $(sort $(wildcard plugins/*))
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test ui bench clean

# torch and torchvision are pinned in the same pip command as everything else, so pip never
# swaps in another multi-GB build.
$(VENV)/.installed: pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q torch==2.14.1 torchvision==0.29.1 \
		-e '.[test]' $(foreach p,$(PLUGINS),-e $(p))
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/sslcore run $(VERTICAL) --quick

test: setup
	$(VENV)/bin/pytest -q

ui: setup
	$(VENV)/bin/sslcore ui

bench: setup
	$(PY) benchmarks/label_efficiency.py --vertical $(VERTICAL)

clean:
	rm -rf $(VENV) sslcore_runs mlruns mlflow.db .pytest_cache
