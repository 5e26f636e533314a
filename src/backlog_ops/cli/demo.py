"""`backlog-ops demo`: a scripted two-ticket session through a real local proxy, then spend.

It runs in a temporary BACKLOG_HOME so that the demo's spend never mixes with real spend, starts
`backlog-ops proxy` (offline config, no provider key) on 127.0.0.1, plays two Claude Code-like
sessions on two tickets through both API formats, stops the proxy, and prints the ledger.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from backlog_ops.errors import DemoError
from backlog_ops.gateway.process import ProxyProcess

__all__ = ["run_demo"]


def run_demo(*, port: int = 0, keep_home: bool = False) -> int:
    demo_home = Path(tempfile.mkdtemp(prefix="backlog-ops-demo-"))
    os.environ["BACKLOG_HOME"] = str(demo_home)
    # Contexts and the ledger in the demo home too, never in the user's Redis or PostgreSQL.
    for variable in ("BACKLOG_CONTEXT_FILE", "BACKLOG_CONTEXT_URL", "BACKLOG_LEDGER_URL"):
        os.environ.pop(variable, None)
    # The demo proxy uses a key generated in the demo home, never the user's own master key.
    os.environ.pop("LITELLM_MASTER_KEY", None)
    from backlog_ops.gateway.master_key import master_key

    key, _ = master_key()
    proxy = ProxyProcess(demo_home, port=port)
    print(f"demo home (temporary): {demo_home}")
    print(f"starting the LiteLLM proxy on {proxy.base_url} (offline config; log: {proxy.log_path}) ...", flush=True)
    try:
        proxy.start()
        _play_scenario(proxy.base_url, key)
    finally:
        proxy.stop()

    from backlog_ops.reports.views import spend_view
    from backlog_ops.reports.views_text import render_view, summary_line

    print("\nspend per ticket:")
    print(render_view(spend_view(by="ticket")), end="")
    for ticket in ("FEAT-001", "FEAT-002"):
        view = spend_view(by="gate", ticket=ticket)
        print()
        print(summary_line(view["totals"], ticket) + "\n")
        print(render_view(view), end="")
    if keep_home:
        print(f"\nkept {demo_home}: try  BACKLOG_HOME={demo_home} backlog-ops spend FEAT-001 --by model")
    else:
        shutil.rmtree(demo_home, ignore_errors=True)
    return 0


def _play_scenario(base: str, key: str) -> None:
    import httpx

    from backlog_ops.context.backend import open_store
    from backlog_ops.context.scope import Scope
    from backlog_ops.project.file import default_project

    # The store the demo proxy reads too: it inherits this environment.
    store = open_store()
    project = default_project()
    session_a, session_b, session_c = (str(uuid.uuid4()) for _ in range(3))
    reviewer = "agent-" + uuid.uuid4().hex[:8]

    def ctx(ticket: str, gate: str, agent: str, skill: str) -> dict:
        return {"ticket_id": ticket, "gate": gate, "agent_type": agent, "skill": skill, "project": project}

    with httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60) as client:

        def chat(session: str, model: str, prompt: str) -> None:
            r = client.post(
                "/v1/chat/completions",
                headers={"x-claude-code-session-id": session},
                json={"model": model, "messages": [{"role": "user", "content": prompt}]},
            )
            _check(r, "chat/completions")

        def messages(session: str, model: str, prompt: str, agent_id: str | None = None, stream: bool = False) -> None:
            headers = {"x-claude-code-session-id": session, "anthropic-version": "2023-06-01"}
            if agent_id:
                headers["x-claude-code-agent-id"] = agent_id
            body = {"model": model, "max_tokens": 1024, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
            if stream:
                with client.stream("POST", "/v1/messages", headers=headers, json=body) as r:
                    r.read()
                    _check(r, "v1/messages (stream)")
            else:
                _check(client.post("/v1/messages", headers=headers, json=body), "v1/messages")

        steps = [
            ("session A: FEAT-001 plan", lambda: store.set(ctx("FEAT-001", "plan", "planner", "backlog-implementer"), Scope(session_a))),
            ("  cheap, chat/completions", lambda: chat(session_a, "cheap", "Plan the change for FEAT-001: " + "context " * 300)),
            ("session B: FEAT-002 generate", lambda: store.set(ctx("FEAT-002", "generate", "ticket", "backlog-ticket"), Scope(session_b))),
            ("  cheap, v1/messages", lambda: messages(session_b, "cheap", "Write the ticket FEAT-002: " + "detail " * 200)),
            ("session A: FEAT-001 implement", lambda: store.set(ctx("FEAT-001", "implement", "backend", "backlog-implementer"), Scope(session_a))),
            ("  balanced, v1/messages, streamed", lambda: messages(session_a, "balanced", "Implement FEAT-001: " + "code " * 1200, stream=True)),
            ("  balanced, chat/completions", lambda: chat(session_a, "balanced", "Continue FEAT-001: " + "code " * 800)),
            ("session A: reviewer subagent on FEAT-001", lambda: store.set(ctx("FEAT-001", "review", "reviewer", "backlog-implementer"), Scope(session_a, reviewer))),
            ("  frontier, v1/messages, subagent", lambda: messages(session_a, "frontier", "Review FEAT-001: " + "diff " * 600, agent_id=reviewer)),
            ("session B: FEAT-002 review", lambda: store.set(ctx("FEAT-002", "review", "reviewer", "backlog-ticket"), Scope(session_b))),
            ("  balanced, chat/completions", lambda: chat(session_b, "balanced", "Review the ticket FEAT-002: " + "detail " * 300)),
            ("session C: no context", lambda: None),
            ("  cheap, chat/completions, untagged", lambda: chat(session_c, "cheap", "What time is it?")),
        ]
        for label, step in steps:
            print(label, flush=True)
            step()
    store.clear_session(session_a)
    store.clear_session(session_b)


def _check(response, what: str) -> None:
    if response.status_code != 200:
        raise DemoError(f"{what} answered {response.status_code}: {response.text[:300]}")
