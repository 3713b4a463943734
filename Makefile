# The two commands of the README: `make run` and `make test`. Both set up .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test test-embedded test-scaleout lint format migrate run-distributed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

# uvicorn, not Daphne: it streams request bodies to the app (see README, "Why uvicorn").
run: migrate
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/
	$(BIN)/uvicorn medgenomics.asgi:application --host $(HOST) --port $(PORT) --ws websockets-sansio

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The suite runs twice: on the embedded default (SQLite, in-process workers), then against
# PostgreSQL and Redis with real Celery worker processes (the scale-out tests start them).
SCALEOUT_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
SCALEOUT_REDIS_URL ?= redis://127.0.0.1:6379/9

test: lint test-embedded test-scaleout

test-embedded: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m pytest

test-scaleout: install
	DATABASE_URL=$(SCALEOUT_DATABASE_URL) REDIS_URL=$(SCALEOUT_REDIS_URL) $(BIN)/python -m pytest

# Web (uvicorn) + two Celery workers + beat against this machine's PostgreSQL and Redis.
DISTRIBUTED_ENV = DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/medgenomics} REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0}
run-distributed: install
	-createdb -h 127.0.0.1 -U postgres medgenomics 2>/dev/null
	$(DISTRIBUTED_ENV) $(BIN)/python manage.py migrate --noinput
	$(DISTRIBUTED_ENV) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(DISTRIBUTED_ENV) $(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/
	$(DISTRIBUTED_ENV) $(BIN)/honcho -f Procfile start
