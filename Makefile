# The two commands: `make demo` (main job) and `make test` (whole suite).
# Both create .venv and install what they need; downloads are cached in .cache/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint docs tools browser bench venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/python scripts/demo.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/python scripts/typecheck.py

test: lint docs tools browser
	sh scripts/ensure_postgres.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The documentation site into site/; --strict: a broken link or anchor fails it.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Debian's Chromium for the dashboard's browser tests (no-op when present).
browser:
	sh scripts/install_chromium.sh

# The pinned npm tools the integration tests run (first run downloads them).
tools: venv
	@$(BIN)/python scripts/install_tools.py cloudflare > /dev/null
	@$(BIN)/python scripts/install_tools.py vercel > /dev/null

# Every benchmark, one after another (about 15 minutes with the job queue against its peers); figures go in docs/benchmarks.md.
bench: venv
	for script in run_task build coldstart scheduler http_api vs_nitro dev_idle; do \
		echo "== bench/$$script.py"; $(BIN)/python bench/$$script.py || exit 1; done
	echo "== bench/job_queue.py"; $(BIN)/python bench/job_queue.py --server private

clean:
	rm -rf $(VENV) .cache build dist site *.egg-info
