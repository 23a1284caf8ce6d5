# lake_assets: `make run` and `make test` are the two commands a fresh machine needs (Python 3.11, Java 17).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: install run test test-fast bench dev clean check-java

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lake_assets needs Python 3.11 or newer (PYTHON=$(PYTHON))")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# pyspark is a 456 MB sdist: pip's cache (~/.cache/pip) keeps the built wheel between runs.
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

check-java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { \
	  echo "lake_assets: Spark needs Java 17 or newer and no 'java' was found."; \
	  echo "  Debian/Ubuntu: sudo apt-get install openjdk-17-jre-headless   macOS: brew install openjdk@17"; exit 1; }

## Materialise all four assets for today's partition on ./lake with the bundled offline samples.
run: install check-java
	$(BIN)/python -m lake_assets.quickstart

## The whole suite, end-to-end tests included.
test: install check-java
	$(BIN)/python -m pytest

## Everything but the slow end-to-end tests (daemon, webserver, browser).
test-fast: install check-java
	$(BIN)/python -m pytest -m "not e2e"

bench: install check-java
	$(BIN)/python bench/bench_filmes.py

clean:
	rm -rf lake .dagster_home .spark test-artifacts bench/out
