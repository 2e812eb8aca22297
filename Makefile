# Two entry points: `make demo` and `make test`. Both set up everything from scratch.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done

.PHONY: setup demo test test-fast lint bench clean

$(STAMP): pyproject.toml tools/cypherlint/package-lock.json engine/ui/package-lock.json scripts/setup-system.sh
	bash scripts/setup-system.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo ""
	@echo "==> Installing Python packages. The first time this compiles llama.cpp from source"
	@echo "    (llama-cpp-python): about 15 minutes on 2 cores, with little output. Later runs reuse"
	@echo "    pip's cached wheel and take about a minute."
	@echo ""
	$(BIN)/pip install -e '.[dev]'
	@echo "==> Installing node tools (Cypher linter, explorer UI assets)"
	npm ci --prefix tools/cypherlint --no-audit --no-fund --loglevel=error
	# --ignore-scripts: a swagger-ui-dist dependency's install script phones home
	npm ci --prefix engine/ui --ignore-scripts --no-audit --no-fund --loglevel=error
	@echo "==> Preparing model files (encoder conversion ~12 s, LLM join a few seconds)"
	$(BIN)/persona setup
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/persona demo

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not llm and not browser"

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/fusion.py
	$(BIN)/python benchmarks/linking.py

clean:
	rm -rf $(VENV) tools/cypherlint/node_modules engine/ui/node_modules .pytest_cache
