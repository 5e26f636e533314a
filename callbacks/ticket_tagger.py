"""TicketTagger: tag every LLM request with the ticket context in force for its session and agent.

A context whose ticket was inferred from the git branch adds ticket_source:branch, so LiteLLM's
spend logs and the ledger can tell it from a context that was set.

Loaded by `litellm --config` through `litellm_settings.callbacks:
backlog_ops.callbacks.ticket_tagger.ticket_tagger`, or registered in-process with
`litellm.callbacks = [TicketTagger()]` (SDK use, as CrewAI does).

Tags go where LiteLLM's spend logs read them: `data["metadata"]["tags"]` for /chat/completions,
`data["litellm_metadata"]["tags"]` for /v1/messages, whose `metadata` is Anthropic's own object.
The design document set them in `log_pre_api_call`, which never reaches the spend logs.
"""

from __future__ import annotations

import logging
from typing import Any

from backlog_ops.common.settings import settings
from backlog_ops.common.terminal import printable
from backlog_ops.context.backend import make_resolver
from backlog_ops.context.fields import TAG_PREFIXES, TICKET_SOURCE, check_field, tag_problem, valid_id
from backlog_ops.context.identity import (
    SPEND_LOG_AGENT,
    SPEND_LOG_SESSION,
    request_identity,
)
from backlog_ops.context.resolver import ContextResolver

from .base import Callback, add_spend_logs_metadata, metadata_key, request_metadata

__all__ = ["TicketTagger", "ticket_tagger"]

log = logging.getLogger("backlog_ops.tagger")

_OUR_PREFIXES = tuple(prefix + ":" for _, prefix in TAG_PREFIXES)


class TicketTagger(Callback):
    """Adds ticket:/gate:/project:/agent:/skill:/component: tags; never fails or blocks a call."""

    def __init__(self, resolver: ContextResolver | None = None) -> None:
        super().__init__(log)
        self._resolver = resolver

    @property
    def resolver(self) -> ContextResolver:
        # Built on first use, not at import: the proxy imports this module before BACKLOG_HOME
        # may be final, and imports must stay free of side effects.
        if self._resolver is None:
            self._resolver = make_resolver(warn=self._warn)
        return self._resolver

    # -- proxy: every route, before routing ----------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: str) -> dict:
        try:
            self.tag_request(data, call_type)
        except Exception as exc:  # noqa: BLE001 - tagging must never break the user's call
            self._warn(f"tagging skipped, call goes on untagged: {type(exc).__name__}: {exc}")
        return data

    # -- SDK mode: litellm.acompletion in-process (no proxy pre-call hook runs) ----------------

    async def async_pre_call_deployment_hook(self, kwargs: dict, call_type: Any) -> dict:
        try:
            if not kwargs.get("proxy_server_request"):  # the proxy hook already tagged proxied calls
                self.tag_request(kwargs, call_type)
        except Exception as exc:  # noqa: BLE001
            self._warn(f"tagging skipped, call goes on untagged: {type(exc).__name__}: {exc}")
        return kwargs

    # -- the work ------------------------------------------------------------------------------

    def tag_request(self, data: dict, call_type: Any = None) -> None:
        """Add the context's tags to a request body as LiteLLM passes it to hooks (in place)."""
        meta_key = metadata_key(data, call_type)
        meta = request_metadata(data, call_type)
        proxy_request = data.get("proxy_server_request")
        headers = (proxy_request or {}).get("headers") or {}
        anthropic_meta = data.get("metadata") if meta_key == "litellm_metadata" else None
        user_id = anthropic_meta.get("user_id") if isinstance(anthropic_meta, dict) else None
        session_id, agent_id = request_identity(headers, user_id)
        if session_id is None and not proxy_request:
            # In-process SDK use: the process says whose work it is, as the shell helper does.
            process = settings()
            session_id, agent_id = process.session_id, process.agent_id

        self._drop_bad_caller_tags(data, meta)
        resolved = self.resolver.resolve(session_id, agent_id)
        ours = list(resolved.tags) if resolved is not None else []
        component = meta.get("component") or (data.get("metadata") or {}).get("component")
        if component and not any(t.startswith("component:") for t in ours):
            try:
                ours.append(f"component:{check_field('component', component)}")
            except ValueError:
                pass

        if ours:
            existing = meta.get("tags")
            tags = list(existing) if isinstance(existing, list) else []
            taken = _caller_prefixes(data, headers, tags)
            if "ticket:" in taken:
                # The caller named its own ticket: the stored context's "inferred" mark is not about it.
                taken.add(TICKET_SOURCE + ":")
            for tag in ours:
                prefix = tag.split(":", 1)[0] + ":"
                if tag not in tags and prefix not in taken:
                    tags.append(tag)
            meta["tags"] = tags

        # Ids that are not ids (control characters, a megabyte of text) are neither stored nor used.
        identity = {key: value for key, value in ((SPEND_LOG_SESSION, session_id), (SPEND_LOG_AGENT, agent_id)) if valid_id(value)}
        if identity:
            add_spend_logs_metadata(meta, identity)

    def _drop_bad_caller_tags(self, data: dict, meta: dict) -> None:
        """Remove the caller's ticket:/gate:/… tags whose values break the field rules.

        LiteLLM has merged the x-litellm-tags header and the body's tags into `meta["tags"]` by
        now; the body's own list is cleaned too. The call goes on, attributed to the stored
        context as if the caller had sent no such tag.
        """
        anthropic_meta = data.get("metadata")
        for holder in (meta, data, anthropic_meta if isinstance(anthropic_meta, dict) and anthropic_meta is not meta else {}):
            tags = holder.get("tags")
            if not isinstance(tags, list):
                continue
            kept = []
            for tag in tags:
                problem = tag_problem(tag)
                if problem is None:
                    kept.append(tag)
                else:
                    shown = printable(tag if len(tag) <= 80 else tag[:77] + "...")
                    self._warn(f"ignored a caller's tag '{shown}' ({problem}); the call is attributed "
                               "to the stored context instead", key="bad caller tag " + tag.partition(":")[0])
            if len(kept) != len(tags):
                holder["tags"] = kept


def _caller_prefixes(data: dict, headers: dict, tags: list) -> set[str]:
    """Context prefixes the caller set itself (its explicit ticket:… beats the stored context)."""
    caller = [t for t in tags if isinstance(t, str)]
    body_tags = data.get("tags")
    if isinstance(body_tags, list):
        caller += [t for t in body_tags if isinstance(t, str)]
    for name, value in headers.items():
        if str(name).lower() == "x-litellm-tags" and isinstance(value, str):
            caller += [t.strip() for t in value.split(",")]
    return {t.split(":", 1)[0] + ":" for t in caller if t.startswith(_OUR_PREFIXES) and tag_problem(t) is None}


ticket_tagger = TicketTagger()
