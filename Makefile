# The two commands a fresh machine needs: `make demo` and `make test`.
PY := .venv/bin/python
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
PKGS := $(wildcard core facade connectors cli sandbox replication parallel_run bench)

.PHONY: demo test lint typecheck bench bench-events bench-replication bench-parallel bench-reconcile bench-deps clean sysdeps

.venv/.installed: setup.cfg pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	.venv/bin/pip install -q --disable-pip-version-check -e '.[test,dev]' 2>&1 | grep -v '^WARNING: Location' || true
	.venv/bin/python -c 'import flask, gunicorn, psycopg, sqlalchemy, pybreaker, pytest'
	touch $@

sysdeps:
ifeq ($(PG_BIN),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
endif

bench-deps: sysdeps
	@command -v nginx >/dev/null && command -v wrk >/dev/null && command -v hey >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk hey >/dev/null)

demo: sysdeps .venv/.installed
	.venv/bin/strangler demo

lint: .venv/.installed
	.venv/bin/ruff check $(PKGS) tests
	.venv/bin/ruff format --check $(PKGS) tests

typecheck: .venv/.installed
	.venv/bin/mypy

test: sysdeps .venv/.installed lint typecheck
	.venv/bin/pytest -q

bench: bench-deps .venv/.installed
	$(PY) -m bench.facade

bench-events: sysdeps .venv/.installed
	$(PY) -m bench.events

bench-replication: sysdeps .venv/.installed
	$(PY) -m bench.replication

bench-reconcile: sysdeps .venv/.installed
	$(PY) -m bench.reconcile

bench-parallel: bench-deps .venv/.installed
	$(PY) -m bench.parallel

clean:
	rm -rf .venv *.egg-info .pytest_cache .mypy_cache .ruff_cache
