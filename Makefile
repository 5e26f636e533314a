# Two commands do all the set-up:  `make demo`  and  `make test`.
# Each creates .venv with the tested dependency ranges on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/backlog-ops demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python bench/context_lookup.py
	$(BIN)/python bench/proxy_overhead.py
	$(BIN)/python bench/ledger_scale.py
	$(BIN)/python bench/hook_walltime.py
	$(BIN)/python bench/mcp_roundtrip.py
	$(BIN)/python bench/guardrails_eval.py
	$(BIN)/python bench/compression_eval.py
	$(BIN)/python bench/callback_costs.py
	$(BIN)/python bench/transcript_memory.py
	$(BIN)/python bench/journal_ingest.py
	$(BIN)/python bench/replica_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .cache
