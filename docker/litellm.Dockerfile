# The LiteLLM proxy image with backlog-ops installed, so the config's callbacks
# (backlog_ops.callbacks.ticket_tagger / ticket_policy / spend_ledger) import inside the container.
# The base image is pinned to the LiteLLM version the test suite runs against (pyproject.toml).
ARG LITELLM_IMAGE=ghcr.io/berriai/litellm:main-v1.106.12
FROM ${LITELLM_IMAGE}

COPY pyproject.toml README.md /opt/backlog-ops/
COPY src /opt/backlog-ops/src
COPY callbacks /opt/backlog-ops/callbacks
COPY config /opt/backlog-ops/config
COPY hooks /opt/backlog-ops/hooks
COPY mcp_server /opt/backlog-ops/mcp_server
COPY skills /opt/backlog-ops/skills
# --no-deps: litellm and its stack come with the base image; add only what the callbacks need
# beyond it (psycopg for the PostgreSQL ledger, BACKLOG_LEDGER_URL).
RUN pip install --no-cache-dir --no-deps /opt/backlog-ops \
    && pip install --no-cache-dir "filelock>=3.13,<5" "psycopg[binary]>=3.1,<4"
