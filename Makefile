# StellarStack: `make dev` runs the whole stack on this machine, `make test` runs every test.
# Both do their own set-up on a fresh clone: a virtualenv, Python deps, npm ci, the web build
# and the local demo image (when a Docker engine answers).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
WEB_SRC := $(shell find web/src web/index.html web/vite.config.ts web/package.json -type f 2>/dev/null)

.PHONY: dev test lint web images setup clean

setup: $(STAMP) web/node_modules/.stamp

$(STAMP): pyproject.toml node-agent/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "StellarStack needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip<26.3'  # chalice 1.34 requires pip<26.3
	$(BIN)/pip install --quiet -e ./node-agent -e '.[dev]'
	@touch $@

web/node_modules/.stamp: web/package.json web/package-lock.json
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || (echo "StellarStack needs Node 20+"; exit 1)
	cd web && npm ci --no-audit --no-fund
	@touch $@

web/dist/index.html: web/node_modules/.stamp $(WEB_SRC)
	cd web && npm run build

web: web/dist/index.html

images: $(STAMP)
	@$(BIN)/stellar images build || echo "No Docker engine answers: game servers will run with the (unisolated) process runtime."

dev: $(STAMP) web images
	$(BIN)/stellar dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint template.yaml

test: $(STAMP) web images lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) web/node_modules web/dist .stellar .pytest_cache .ruff_cache
