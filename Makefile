# Everything goes through uv and the committed uv.lock. On a machine without uv, a private
# copy is installed into .tools/ with pip (only Python 3.11 and make are needed).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: run test test-slow bench-bayes lint setup clean

run: setup  ## the main job: the CDNOW HTML report (formula vs models), written to report.html
	$(UV) run --frozen clvmodels report --out report.html

test: setup  ## the test suite (without the slow tests)
	@$(UV) run --frozen pytest -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-slow: setup  ## the slow tests only (sampling, wheel install, large data)
	@$(UV) run --frozen pytest -m slow $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no slow tests: failing" >&2; exit 1; fi; exit $$rc

lint: setup
	$(UV) run --frozen ruff check src tests benchmarks

bench-bayes: setup  ## Bayesian benchmark, side by side with pymc-marketing (bench group)
	$(UV) sync --frozen --group bench --compile-bytecode
	$(UV) run --frozen --group bench python benchmarks/bench_bayes.py

setup: .venv/.synced

# --compile-bytecode: .pyc files written once at install; without them (read-only
# site-packages, or PYTHONDONTWRITEBYTECODE=1 as on our CI machines) every process
# compiles pymc, pytensor and arviz from source on import, ~4.5 s each time
.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv

clean:
	rm -rf .venv .tools
