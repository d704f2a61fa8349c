# Clareza. `make run` and `make test` set everything up on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format worker beat bench messages clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Clareza needs Python 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	@echo "Clareza is at http://$(HOST):$(PORT)/ (email is printed here, in this terminal)"
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(STAMP)
	@.ci/chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

worker: $(STAMP)
	$(BIN)/celery -A portal worker --loglevel=INFO --concurrency=2

beat: $(STAMP)
	$(BIN)/celery -A portal beat --loglevel=INFO --schedule=$(VENV)/celerybeat-schedule

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Refresh the pt-BR catalogue after changing strings, then translate and compile.
messages: $(STAMP)
	$(BIN)/python manage.py makemessages --locale=pt_BR --no-obsolete --ignore='.venv/*' --ignore='staticfiles/*'
	$(BIN)/python manage.py compilemessages --locale=pt_BR --ignore='.venv/*'

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
