# Intake: `make run` serves the app, `make test` runs the tests, `make bench` measures.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DJANGO_DEBUG ?= 1

.PHONY: install run test test-unit lint fmt bench worker clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: install
	$(PY) scripts/run.py

# Tests use their own Redis db number (13) so they never collide with a running app.
test: install
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/13} $(PY) scripts/redis_server.py -- $(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# Lint: ruff (lint and format), mypy with django-stubs, and no model change without its migration.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy ingestion realtime analytics
	$(PY) manage.py makemigrations --check --dry-run

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	REDIS_URL=$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/12} $(PY) scripts/redis_server.py -- $(PY) bench/run.py $(BENCH_ARGS)

worker: install
	$(PY) scripts/redis_server.py -- $(VENV)/bin/celery -A config worker -E -l info

clean:
	rm -rf .run staticfiles test-artifacts
