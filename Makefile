# genstream: the few verbs people expect. Everything installs itself on first use.
SHELL := /bin/bash
PY := .venv/bin/python
API_URL := http://127.0.0.1:$(or $(GENSTREAM_API_PORT),8000)


.PHONY: help setup dev test chaos test-unit test-integration lint format schemas bench bench-quick \
        infra-up infra-down infra-status up down status clean

help:
	@echo "make dev          set up, start the stack and every service, run the demo"
	@echo "make test         set up, start what the tests need, lint, run the whole suite"
	@echo "make up / down    start / stop the stack and every service in the background"
	@echo "make infra-up / infra-down / infra-status   only Kafka, PostgreSQL and S3"
	@echo "make lint         ruff, ruff format --check, mypy --strict"
	@echo "make schemas      regenerate contracts/schemas from the event models"
	@echo "make chaos        tests that kill real processes (not part of make test)"
	@echo "make bench        benchmarks against a Celery peer (~20 min; not part of make test)"
	@echo "make bench-quick  every benchmark briefly, once (3-5 min): a smoke test of the harness"

setup:
	@infra/setup.sh all

infra-up:
	@infra/stack.sh up

infra-down:
	@infra/stack.sh down

infra-status:
	@infra/stack.sh status

up: infra-up
	@infra/services.sh up
	@echo "genstream is up: API on $(API_URL), web app on $(API_URL)/ (logs in var/log/, stop with make down)"

down:
	@infra/stack.sh down

status: infra-status

dev: up
	@$(PY) -m genstream.cli demo --api-url $(API_URL)
	@echo "the stack keeps running: API on $(API_URL), web app on $(API_URL)/; make down stops it"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

schemas: setup
	$(PY) -m contracts.schema_export

test:
	@infra/run-tests.sh

chaos:
	@GENSTREAM_TEST_MARKERS=chaos infra/run-tests.sh tests

test-unit: setup
	$(PY) -m pytest tests/unit -q

bench: setup
	@bench/run.sh

bench-quick: setup
	@BENCH_QUICK=1 bench/run.sh

clean: down
	rm -rf var
