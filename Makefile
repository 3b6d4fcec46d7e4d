# Two commands for users: `make demo` and `make test`. Both set everything up
# (virtualenv, requirements, migrations) and are safe to run again.
# A local .env (see .env.example) is exported to every command.
ifneq (,$(wildcard .env))
include .env
export
endif

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements
# pytest-xdist workers for `make test` (the suite waits on subprocesses much of the time)
TEST_WORKERS ?= 2

.PHONY: demo serve test test-unit test-busy lint format install migrate sandbox scrapyd clean

## demo: set up, start the sandbox, run the example scan, print a summary
demo: migrate
	$(PY) -m tools.demo

## serve: the sandbox, the scans API with its page and a worker, until Ctrl-C (prints the URL and a key)
serve: migrate
	$(PY) -m tools.serve

## test: set up and run the whole test suite (real PostgreSQL and Redis on localhost),
## two workers, product coverage gate; tiers: `$(PY) -m pytest -m unit|integration|e2e`
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

## test-unit: the quick loop, no services needed
test-unit: install
	$(PY) -m pytest -m unit --no-cov

## test-busy: three full runs in a row with every core kept busy by a CPU hog (the flake check)
test-busy: install
	bash tools/busy_suite.sh 3

## lint: the formatter's output is the style; ruff's rule set is in pyproject.toml
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

## format: apply the formatter and ruff's safe fixes
format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

install: $(STAMP)

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

## migrate: apply database migrations (embedded PostgreSQL when DATABASE_URL is unset)
migrate: install
	$(PY) -m crawler.db migrate

## sandbox: run the simulated services in the foreground
sandbox: install
	$(PY) -m sandbox

## scrapyd: run scrapyd in the foreground with scrapyd/scrapyd.conf, state under .data/scrapyd
## (deploy with `.venv/bin/scrapyd-deploy`; see scrapyd/README.md)
scrapyd: install
	mkdir -p .data/scrapyd
	ln -sf ../../scrapyd/scrapyd.conf .data/scrapyd/scrapyd.conf
	cd .data/scrapyd && DATA_DIR="$(abspath $(or $(DATA_DIR),.data))" exec "$(abspath $(VENV))/bin/scrapyd" --pidfile=

clean:
	rm -rf $(VENV) .coverage .coverage.* htmlcov
