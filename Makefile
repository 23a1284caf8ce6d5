# lake_assets: `make run` and `make test` are the two commands a fresh machine needs (Python 3.11, Java 17).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: install run test test-fast bench dev clean check-java run-s3 s3-down spark-up spark-down seed-history

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

## `make run` on a local S3: SeaweedFS on 127.0.0.1:8333 (other ports: SeaweedFS defaults), data kept
## in .lake-s3/, dev-only credentials lake / lakelakelake, the lake in s3://lake/lake.
S3_PORT ?= 8333
S3_ENV  := LAKE_ROOT=s3://lake/lake AWS_ENDPOINT_URL=http://127.0.0.1:$(S3_PORT) AWS_REGION=us-east-1 \
           AWS_ACCESS_KEY_ID=lake AWS_SECRET_ACCESS_KEY=lakelakelake
run-s3: install check-java
	$(BIN)/python -m lake_assets_tests.s3_server up --dir .lake-s3 --port $(S3_PORT) --bucket lake
	$(S3_ENV) $(MAKE) --no-print-directory run
	@$(BIN)/python -m lake_assets_tests.s3_server hint --port $(S3_PORT) --bucket lake

## Stop the SeaweedFS of `make run-s3` by the PID it recorded (the data stays in .lake-s3/).
s3-down:
	$(BIN)/python -m lake_assets_tests.s3_server down --dir .lake-s3

## The Dagster UI and daemon on http://127.0.0.1:3000 with a warm Spark Connect server (DAGSTER_HOME=.dagster_home,
## Spark state in .spark/); Ctrl-C stops both. The lake is LAKE_ROOT (default ./lake).
dev: install check-java
	$(BIN)/python -m lake_assets.devserver dev

## Only the Spark Connect server of `make dev` (sc://127.0.0.1:15002), left running for CLI runs; spark-down stops it.
spark-up: install check-java
	$(BIN)/python -m lake_assets.devserver spark-up
spark-down:
	$(BIN)/python -m lake_assets.devserver spark-down

## DAYS days of raw TMDB history from START, from the offline snapshot, in LAKE_ROOT (for the backfill and sensor demo).
START ?= 2024-01-01
DAYS  ?= 30
seed-history: install
	$(BIN)/python -m lake_assets.seed_history --start $(START) --days $(DAYS)

## The whole suite, end-to-end tests included.
test: install check-java
	$(BIN)/python -m pytest

## Everything but the slow end-to-end tests (daemon, webserver, browser).
test-fast: install check-java
	$(BIN)/python -m pytest -m "not e2e"

## Every benchmark, each printing a side-by-side table (minutes: the backfill one runs 90 partitions).
bench: install check-java
	$(BIN)/python bench/bench_filmes.py
	$(BIN)/python bench/bench_s3_publish.py
	$(BIN)/python bench/bench_tmdb_collect.py
	$(BIN)/python bench/bench_backfill_sensor.py

clean:
	rm -rf lake .dagster_home .spark test-artifacts bench/out
