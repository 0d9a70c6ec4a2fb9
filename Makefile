# llmprof — `make run` starts the proxy and the API; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PROXY_HOST ?= 127.0.0.1
PROXY_PORT ?= 8080
API_HOST   ?= 127.0.0.1
API_PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test test-fast lint fmt bench clean

# The virtualenv is (re)built only when pyproject.toml or overrides.txt change.
$(STAMP): pyproject.toml overrides.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --override overrides.txt \
		--config-settings editable_mode=compat -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/python -m addon.run --proxy-host $(PROXY_HOST) --proxy-port $(PROXY_PORT) \
		--api-host $(API_HOST) --api-port $(API_PORT)

test: $(STAMP)
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Everything but the mitmdump subprocess tests.
test-fast: $(STAMP)
	@$(BIN)/python -m pytest -q -m "not e2e" $(PYTEST_ARGS)

lint: $(STAMP)
	@$(BIN)/ruff check addon storage api tests bench
	@$(BIN)/ruff format --check addon storage api tests bench

fmt: $(STAMP)
	@$(BIN)/ruff format addon storage api tests bench
	@$(BIN)/ruff check --fix addon storage api tests bench

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
