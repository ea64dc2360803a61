# The two commands of the README: `make dev` (run the embedded stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: dev test unit integration e2e install lint clean

ASYNCAPI := tests/contract/asyncapi

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

# The official AsyncAPI parser (npm) validates our AsyncAPI documents in the tests.
$(ASYNCAPI)/node_modules/.installed: $(ASYNCAPI)/package.json $(ASYNCAPI)/package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	command -v kcat >/dev/null || (apt-get update -qq && apt-get install -y -qq kcat)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	cd $(ASYNCAPI) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed $(ASYNCAPI)/node_modules/.installed

dev: install  ## start broker, PostgreSQL, the four services and the simulator
	$(BIN)/onewindow dev

lint: install  ## architecture contracts (a service never imports another)
	$(BIN)/lint-imports

test: lint  ## unit, integration and end-to-end tests on a real broker and PostgreSQL
	$(BIN)/python -m pytest -q

unit: $(BIN)/.installed  ## pure logic only: no broker, no database (seconds)
	$(BIN)/python -m pytest -q tests/unit

integration: install  ## handlers and stores on a real PostgreSQL (and broker), contracts
	$(BIN)/python -m pytest -q tests/integration tests/contract

e2e: install  ## the services as processes on a real broker and PostgreSQL
	$(BIN)/python -m pytest -q tests/e2e

clean:
	rm -rf $(VENV) .onewindow
