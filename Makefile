# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
STACK_STAMP := $(VENV)/.installed-stack

.PHONY: run test lint bench bench-quick stack clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

$(STACK_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[stack]'
	touch $@ $(STAMP)

run: $(STAMP)
	mkdir -p data
	$(VENV)/bin/csms serve --config config.toml

test: $(TEST_STAMP)
	bash scripts/ensure-redis.sh
	bash scripts/ensure-compose.sh
	bash scripts/ensure-nginx.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-bench-node.sh
	$(PY) -m ruff check csms billing web tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n auto

# The production topology on one machine: Redis, a MongoDB wire server, two `csms serve`
# nodes (cluster.enabled), a worker and nginx in front (deploy/Procfile, deploy/stack.toml).
stack: $(STACK_STAMP)
	bash scripts/ensure-stack.sh
	mkdir -p data/stack
	$(VENV)/bin/honcho -f deploy/Procfile -d . start

bench: $(STAMP)
	$(PY) bench/side_by_side.py $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) bench/side_by_side.py --quick

clean:
	rm -rf $(VENV) .pytest_cache
