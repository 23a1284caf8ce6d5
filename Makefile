# lake_assets: `make run` and `make test` are the two commands a fresh machine needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export SPARK_LOCAL_IP ?= 127.0.0.1
# `make run`, `make dev` and the CLI share one Dagster instance, so the UI shows what `make run` built.
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install run test test-unit test-fast lint bench dev clean report run-s3 s3-down spark-up spark-down cluster-up cluster-down seed-history \
        deploy-up deploy-reload deploy-down \
        migrate glue-up glue-down

# pyspark is a 456 MB sdist: pip's cache (~/.cache/pip) keeps the built wheel between runs.
$(STAMP): setup.cfg pyproject.toml
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh run
	@echo "lake_assets: installing into $(VENV)/ (the first time takes a few minutes; log: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e ".[dev]"; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 25 $(VENV)/install.log; echo "lake_assets: pip install failed; the whole log is $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

## Materialise all four assets for today's partition on ./lake with the bundled offline samples.
run: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh run
	@$(BIN)/python -m lake_tools.quickstart

## The path of the latest quality report (trusted/_quality/*.html; TABLE=tmdb or filmes for one
## table's), opened in a browser when the machine has a display.
report: install
	@$(BIN)/python -m lake_assets.cli.report $(if $(TABLE),--table $(TABLE))

## The whole suite, end-to-end tests included (Chromium is installed first when missing, as root).
test: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh test
	$(BIN)/python -m pytest

## The tests that start no JVM and no server (conftest.py marks them `unit`): the inner loop, one
## worker per core (they share no server, so they need no session of their own).
test-unit: install
	$(BIN)/python -m pytest -m unit -q -n auto

## Everything but the slow end-to-end tests (daemon, webserver, browser, cluster).
test-fast: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh run
	$(BIN)/python -m pytest -m "not e2e"

## ruff (lint, docstrings, format check), mypy on the package, and Dagster's own check of the definitions.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/dg check defs

## `make run` on a local S3: SeaweedFS on 127.0.0.1:8333 (other ports: SeaweedFS defaults), data kept
## in .lake-s3/, dev-only credentials lake / lakelakelake, the lake in s3://lake/lake.
S3_PORT ?= 8333
S3_ENV  := LAKE_ROOT=s3://lake/lake AWS_ENDPOINT_URL=http://127.0.0.1:$(S3_PORT) AWS_REGION=us-east-1 \
           AWS_ACCESS_KEY_ID=lake AWS_SECRET_ACCESS_KEY=lakelakelake LAKE_S3_PATH_STYLE=1
run-s3: install
	@$(BIN)/python -m lake_tools.seaweedfs up --dir .lake-s3 --port $(S3_PORT) --bucket lake
	@$(S3_ENV) $(MAKE) --no-print-directory run
	@$(BIN)/python -m lake_tools.seaweedfs hint --port $(S3_PORT) --bucket lake

## Stop the SeaweedFS of `make run-s3` by the PID it recorded (the data stays in .lake-s3/).
s3-down:
	@$(BIN)/python -m lake_tools.seaweedfs down --dir .lake-s3

## The Dagster UI and daemon on http://127.0.0.1:3000 with a warm Spark Connect server (Spark state in
## .spark/); Ctrl-C stops both. The lake is LAKE_ROOT (default ./lake).
dev: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh run
	@$(BIN)/python -m lake_tools.devserver dev

## Only the Spark Connect server of `make dev` (sc://127.0.0.1:15002), left running for CLI runs.
spark-up: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh run
	@$(BIN)/python -m lake_tools.devserver spark-up
spark-down:
	@$(BIN)/python -m lake_tools.devserver spark-down

## The production topology on this machine: PostgreSQL storage, a gRPC code server, the webserver and
## the daemon, each its own process (pids and logs in .deploy/), on 127.0.0.1 and free ports unless
## DEPLOY_ARGS says otherwise (--port 3000 --grpc-port N --pg-port N). Ends with the UI's URL.
deploy-up: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh deploy
	@$(BIN)/python -m lake_tools.deploy up --dir .deploy $(DEPLOY_ARGS)
## A new code version in the running deployment: runs in progress finish on the old code.
deploy-reload:
	@$(BIN)/python -m lake_tools.deploy reload-code --dir .deploy
deploy-down:
	@$(BIN)/python -m lake_tools.deploy down --dir .deploy

## Turn a lake published before Iceberg (_manifest.json per folder) into Iceberg tables, in place.
migrate: install
	@$(BIN)/python -m lake_assets.cli.migrate

## A local Glue Data Catalog (moto, in memory) on 127.0.0.1:5000 to try PYICEBERG_CATALOG__LAKE__TYPE=glue.
glue-up: install
	@$(BIN)/python -m lake_tools.moto_glue up --port 5000
glue-down:
	@$(BIN)/python -m lake_tools.moto_glue down

## A Spark standalone cluster from the installed pyspark: a master (spark://127.0.0.1:7077, UI on
## :8080) and WORKERS workers of one core and 1 GiB, and Spark Connect on sc://127.0.0.1:15002
## attached to it (pids and logs in .spark/cluster/ and .spark/logs/). `make dev` then uses it.
WORKERS ?= 2
cluster-up: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh run
	@$(BIN)/python -m lake_tools.cluster up --workers $(WORKERS)
## Stop the Connect server, the workers (with their executors) and the master by pid; idempotent.
cluster-down:
	@$(BIN)/python -m lake_tools.cluster down

## DAYS days of raw TMDB history from START, from the offline snapshot, in LAKE_ROOT (for the backfill
## and sensor demo). The daily partitions then start at START once the code location reloads.
START ?= 2024-01-01
DAYS  ?= 30
seed-history: install
	@$(BIN)/python -m lake_tools.seed_history --start $(START) --days $(DAYS)

## Every benchmark in bench/, each printing a side-by-side table (long: best on an idle machine).
## record.py runs one and writes its table into docs/performance.md, between that benchmark's markers.
bench: install
	@PYTHON=$(PYTHON) lake_tools/bootstrap.sh deploy  # PostgreSQL: bench_iceberg's catalog, bench_instance's storage
	$(BIN)/python bench/record.py bench/bench_filmes.py
	$(BIN)/python bench/record.py bench/bench_contract.py
	$(BIN)/python bench/record.py bench/bench_anomalies.py
	$(BIN)/python bench/record.py bench/bench_quality_report.py
	$(BIN)/python bench/record.py bench/bench_s3_publish.py
	$(BIN)/python bench/record.py bench/bench_tmdb_collect.py
	$(BIN)/python bench/record.py bench/bench_tmdb_runs.py
	$(BIN)/python bench/record.py bench/bench_backfill_sensor.py
	$(BIN)/python bench/record.py bench/bench_raw_events.py
	$(BIN)/python bench/record.py bench/bench_instance.py
	$(BIN)/python bench/record.py bench/bench_iceberg.py
	$(BIN)/python bench/record.py bench/bench_cluster.py

clean:
	rm -rf lake .dagster_home .spark .moto test-artifacts bench/out .deploy .lake-reports
