"""LiteLLM callbacks of backlog-ops (installed as backlog_ops.callbacks).

In a LiteLLM config:

    litellm_settings:
      callbacks:
        - backlog_ops.callbacks.ticket_tagger.ticket_tagger
        - backlog_ops.callbacks.spend_ledger.spend_ledger
        - backlog_ops.callbacks.ticket_policy.ticket_policy     # per-ticket budgets (issue: gateway policy)
        - backlog_ops.callbacks.quota_events.quota_events       # quota.updated events on NATS
"""

# A mounted copy first, the installed one as fallback: docker-compose.yml mounts ./callbacks into
# the LiteLLM container and names it in BACKLOG_CALLBACKS_DIR, so an edited callback runs after a
# restart, without rebuilding the image. A module missing from that directory (or the directory
# itself) comes from the image's own copy. The core (backlog_ops.*) always comes from the image.
import os as _os

from backlog_ops.common.settings import env_str as _env_str

_live = _env_str("BACKLOG_CALLBACKS_DIR")
if _live and _os.path.isfile(_os.path.join(_live, "__init__.py")) and _os.path.realpath(_live) not in map(_os.path.realpath, __path__):
    __path__.insert(0, _live)  # noqa: F821 - a package's own __path__
del _os, _env_str, _live
