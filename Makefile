# Clareza. `make run` and `make test` set everything up on a fresh machine with
# Python 3.11, 3.12 or 3.13: the newest of them that runs here, or PYTHON=/path/to/python.
# A pyenv shim for a version that is not active exists but fails, so each candidate
# is run, not only looked up; the interpreter's own path is kept, not the shim's.
PYTHON_CANDIDATES := python3.13 python3.12 python3.11 python3
PYTHON_IN_RANGE := import sys; (3, 11) <= sys.version_info[:2] <= (3, 13) or sys.exit(1)
PYTHON ?= $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p -c '$(PYTHON_IN_RANGE); print(sys.executable)' 2>/dev/null && break; done)
PYTHON_VERSION := $(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null))
VENV ?= .venv
BIN := $(VENV)/bin
# The venv is made by one Python: another one (PYTHON=..., or a newer python3.x
# installed since) makes a new venv.
VENV_PYTHON := $(VENV)/.python-$(PYTHON_VERSION)
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format worker beat bench messages clean python

python:
	@test -n "$(PYTHON)" || { echo "Clareza needs Python 3.11, 3.12 or 3.13, and none of" \
	  "$(PYTHON_CANDIDATES) runs one here. Install one, or name it: make $(MAKECMDGOALS) PYTHON=/path/to/python3.x"; exit 1; }
	@$(PYTHON) -c '$(PYTHON_IN_RANGE)' 2>/dev/null || { echo "Clareza needs Python 3.11, 3.12" \
	  "or 3.13; PYTHON=$(PYTHON) is $(or $(PYTHON_VERSION),not a Python that runs)."; exit 1; }
	@echo "Using Python $(PYTHON_VERSION) ($(PYTHON)) in $(VENV)"

$(VENV_PYTHON): | python
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $(VENV_PYTHON)

$(STAMP): pyproject.toml $(VENV_PYTHON)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# runserver and a Celery worker with the periodic tasks (on a broker kept in
# files under var/ when REDIS_URL is unset); Ctrl-C stops both.
# The demo's admin opens without a second factor; `make run STAFF_REQUIRE_MFA=1` to try the real thing.
run: export STAFF_REQUIRE_MFA ?= 0
run: export SITE_URL ?= http://$(HOST):$(PORT)
run: python $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	@echo "Clareza is at http://$(HOST):$(PORT)/ (email is sent by the worker and printed here, in lines marked 'worker |')"
	$(BIN)/python manage.py rundemo $(HOST):$(PORT)

# One test process per core (pytest-xdist), each taking the tests in pytest-django's
# order (those that empty the database last); PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= auto
test: python $(STAMP)
	@.ci/chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist load $(PYTEST_ARGS)

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
	$(BIN)/python manage.py makemessages --locale=pt_BR --no-obsolete --ignore='.venv*' --ignore='staticfiles/*' --ignore='var/*'
	$(BIN)/python manage.py compilemessages --locale=pt_BR --ignore='.venv*'

clean:
	rm -rf $(VENV) .venv-* var staticfiles .pytest_cache
