# Everything installs into .venv inside the repo; `make test` works from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast test-dates test-pg demo bench bench-pg lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest

# The suite with the clock at awkward instants (year end, quarter start, leap day; needs libfaketime).
test-dates: install
	$(BIN)/python tests/date_matrix.py tests -m "not slow and not browser"

# The PostgreSQL cases (tests taking the `store` or `env` fixture) against a throwaway cluster (Debian's postgresql package; as root the
# cluster runs as nobody), each case in a schema of its own; the cluster is removed afterwards.
test-pg: install
	@dir=$$(mktemp -d /tmp/okrsync-pg.XXXXXX); \
	url=$$(tools/pgcluster.sh start $$dir) || { tools/pgcluster.sh stop $$dir; exit 1; }; \
	OKRSYNC_TEST_PG=$$url $(BIN)/python -m pytest tests/unit tests/e2e -k postgresql -m "not browser" $(PYTEST_ARGS); rc=$$?; \
	tools/pgcluster.sh stop $$dir; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -m "not e2e" -q

demo: install
	$(BIN)/okrsync demo

bench: install
	$(BIN)/python -m bench

# The store on PostgreSQL beside SQLite (recompute of BENCH_PG_ITEMS items x 200 KRs, sync with a worker per
# source) against a throwaway cluster.
BENCH_PG_ITEMS ?= 1000000
bench-pg: install
	@dir=$$(mktemp -d /tmp/okrsync-pg.XXXXXX); \
	url=$$(tools/pgcluster.sh start $$dir) || { tools/pgcluster.sh stop $$dir; exit 1; }; \
	$(BIN)/python -m bench.pgstore --pg $$url --items $(BENCH_PG_ITEMS); rc=$$?; \
	tools/pgcluster.sh stop $$dir; exit $$rc

# ruff (pyflakes, pycodestyle, import order) and mypy over the installed package layout
lint: install
	$(BIN)/python -m ruff check .
	$(BIN)/python tools/typecheck.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
