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

# System packages only where a target needs them: the official AsyncAPI parser (npm) for the
# contract tests; kcat (a department's own Kafka client) and chromium (the console) for end-to-end.
$(ASYNCAPI)/node_modules/.installed: $(ASYNCAPI)/package.json $(ASYNCAPI)/package-lock.json
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	cd $(ASYNCAPI) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

E2E_TOOLS := $(VENV)/.e2e-tools
$(E2E_TOOLS): $(BIN)/.installed
	command -v kcat >/dev/null || (apt-get update -qq && apt-get install -y -qq kcat)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	# the console is Chinese: without CJK fonts chromium draws boxes (screenshots, printed reports)
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk)
	touch $@

# Reports as PDF (WeasyPrint): pango to lay out, Noto CJK to set Chinese; pdftoppm (poppler) lets the
# tests look at the rendered pages.
REPORT_TOOLS := $(VENV)/.report-tools
$(REPORT_TOOLS): $(BIN)/.installed
	dpkg -s libpango-1.0-0 libpangoft2-1.0-0 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0)
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk)
	command -v pdftoppm >/dev/null || (apt-get update -qq && apt-get install -y -qq poppler-utils)
	touch $@

install: $(BIN)/.installed $(ASYNCAPI)/node_modules/.installed $(E2E_TOOLS) $(REPORT_TOOLS)

dev: $(BIN)/.installed  ## start broker, PostgreSQL, the four services and the simulator
	$(BIN)/onewindow dev

lint: $(BIN)/.installed  ## import contracts (a service never imports another)
	$(BIN)/lint-imports

test: install lint  ## unit, integration and end-to-end tests on a real broker and PostgreSQL
	$(BIN)/python -m pytest -q

unit: $(BIN)/.installed  ## pure logic only: no broker, no database (seconds)
	$(BIN)/python -m pytest -q tests/unit

integration: $(BIN)/.installed $(ASYNCAPI)/node_modules/.installed $(REPORT_TOOLS)  ## handlers and stores on a real PostgreSQL (and broker), contracts
	$(BIN)/python -m pytest -q tests/integration tests/contract

e2e: $(BIN)/.installed $(E2E_TOOLS)  ## the services as processes on a real broker and PostgreSQL
	$(BIN)/python -m pytest -q tests/e2e

clean:
	rm -rf $(VENV) .onewindow
