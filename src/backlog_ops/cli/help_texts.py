"""What `backlog-ops … --help` says: each command's one-line purpose and examples, and defaults.

main.py builds the parsers; `HelpfulParser` (the class of every parser and sub-parser) takes its
description and epilog from TEXTS by the parser's name, and shows each option's default.
"""

from __future__ import annotations

import argparse

__all__ = ["HelpfulParser", "TEXTS"]

# prog -> (one-line purpose, examples). Examples are shown as written (RawDescriptionHelpFormatter).
TEXTS: dict[str, tuple[str, str]] = {
    "backlog-ops": (
        "Attribute every LLM call to the ticket, gate, project, agent and skill that caused it, and report spend per ticket.",
        """\
examples:
  backlog-ops doctor                              is everything in place? (what to run if not)
  backlog-ops proxy                               LiteLLM on 127.0.0.1:4000, offline mock provider
  backlog-ops context set FEAT-001 implement backend
  backlog-ops spend FEAT-001 --by gate

Run `backlog-ops COMMAND --help` for a command's options.""",
    ),
    "backlog-ops context": (
        "Set, clear, show or list the ticket context that LLM calls are attributed to.",
        """\
examples:
  backlog-ops context set FEAT-001 implement backend --ttl 8h
  backlog-ops context show
  backlog-ops context history --since 24h""",
    ),
    "backlog-ops context set": (
        "Set the context (ticket, gate, agent, …) for the global scope, a session or an agent of a session.",
        """\
Without --session the global context is set: it applies to every call no session claims.
Durations: a number and a unit, s, m, h, d, w (e.g. 90m, 8h, 7d), or plain seconds.

examples:
  backlog-ops context set FEAT-001 implement backend --skill backlog-implementer
  backlog-ops context set FEAT-001 review reviewer --session "$SESSION" --agent-id "$AGENT" --ttl 2h
  backlog-ops context set '' prescan sentinel          work that belongs to no ticket""",
    ),
    "backlog-ops context clear": (
        "Clear the context of the global scope, a session, or an agent of a session.",
        """\
examples:
  backlog-ops context clear
  backlog-ops context clear --session "$SESSION" --all-agents""",
    ),
    "backlog-ops context resume": (
        "Let a session paused by a runaway-spend alert (policy pause) call again.",
        """\
examples:
  backlog-ops context resume --session "$SESSION"
  backlog-ops context resume                      every paused session""",
    ),
    "backlog-ops statusline": (
        "Claude Code's status line: the session's ticket, gate, agent and spend, from its JSON on stdin.",
        """\
Installed by `backlog-ops install` as the statusLine command; it never fails (a short line, exit 0).

examples:
  echo '{"session_id": "abc", "cwd": "."}' | backlog-ops statusline
  backlog-ops statusline --with 'my-own-statusline'   yours first, then ours""",
    ),
    "backlog-ops context show": (
        "Show the context in force for a scope (agent, else its session, else global), as the proxy sees it.",
        """\
examples:
  backlog-ops context show
  backlog-ops context show --session "$SESSION" --json""",
    ),
    "backlog-ops context history": (
        "List every set and clear of a context, oldest first.",
        """\
examples:
  backlog-ops context history
  backlog-ops context history --since 24h
  backlog-ops context history --since 2026-11-01 --json""",
    ),
    "backlog-ops context shell-helper": (
        "Print the path of the shell helper (set_backlog_context, get_backlog_context, clear_backlog_context).",
        """\
example:
  source "$(backlog-ops context shell-helper)"
  set_backlog_context FEAT-001 implement backend backlog-implementer""",
    ),
    "backlog-ops spend": (
        "What LLM calls cost, from the ledger: by ticket, day, model, gate, ... (one or two at once); a TICKET with its budget.",
        """\
Columns: cost (every call's, failed ones included), calls (successful), failed, cache hits (answered
from the proxy's response cache), input (prompt tokens neither read from nor written to the
provider's prompt cache), output, cache write, cache read. Days, weeks (from Monday) and months are
UTC. --csv and --json carry the same fields by their names (cost_usd, calls, failed_calls, ...).

examples:
  backlog-ops spend                               every ticket, most expensive first
  backlog-ops spend --since 7d --top 10           this week's ten most expensive tickets, the rest as (others)
  backlog-ops spend --by day --since 2026-11-01 --until 2026-11-30
  backlog-ops spend --by ticket,model --markdown  a table to paste into a pull request
  backlog-ops spend --by month,project --csv
  backlog-ops spend FEAT-001                      one ticket by gate, with its budget
  backlog-ops spend FEAT-001 --by day,model --json
  backlog-ops spend -                             calls made with no ticket""",
    ),
    "backlog-ops report": (
        "Spend per ticket as one HTML page with charts and their tables; it makes no network request when opened.",
        """\
The page: cost per ticket (top N and the rest), cost over time stacked by ticket, each ticket
by gate, model, agent and day, the cache share, and budgets from ./backlog.config.json.

examples:
  backlog-ops report --html spend.html
  backlog-ops report --open --since 7d            this week's spend, in the default browser
  backlog-ops report --html api.html --project my-api --since 2026-11-01 --until 2026-12-01 --top 20""",
    ),
    "backlog-ops proxy": (
        "Run the LiteLLM proxy with the backlog-ops callbacks (no --config: an offline mock provider, answers are fake).",
        """\
The master key is $LITELLM_MASTER_KEY, else a key generated once in $BACKLOG_HOME/master-key
(never printed). Stop it with Ctrl-C.

examples:
  backlog-ops proxy                               offline: the aliases answered by a local mock
  backlog-ops proxy --config litellm.yaml         real providers (backlog-ops config render -o litellm.yaml)
  BACKLOG_CONTEXT_URL=redis://redis:6379/0 backlog-ops proxy --config litellm.yaml --workers 2
                                                  two workers sharing per-ticket budgets through Redis""",
    ),
    "backlog-ops hook": (
        "Claude Code hook entry point: reads the hook's JSON on stdin (install wires it; not for people).",
        """\
example:
  echo '{"hook_event_name": "SessionStart", "session_id": "…", "cwd": "."}' | backlog-ops hook""",
    ),
    "backlog-ops mcp": (
        "Run the backlog-ops MCP server on stdio (Claude Code starts it; install wires it).",
        """\
A resident process that has imported the MCP SDK forks each session's server, so it answers
at once; the first session (after 8 h without one, or an upgrade) starts cold and starts it.
Its socket: $BACKLOG_HOME/mcp/. BACKLOG_MCP_PREFORK=0 turns it off; `backlog-ops doctor` shows it.

example:
  claude mcp add backlog-ops -- backlog-ops mcp""",
    ),
    "backlog-ops install": (
        "Wire the MCP server, hooks and skills into Claude Code for this project or for the user.",
        """\
Install merges with your own settings and never overwrites them; --uninstall removes exactly
what it added.

examples:
  backlog-ops install                             this project (.mcp.json, .claude/)
  backlog-ops install --scope user                every project (~/.claude.json, ~/.claude/)
  backlog-ops install --uninstall""",
    ),
    "backlog-ops config": (
        "Render and check backlog.config.json and LiteLLM proxy configs.",
        """\
examples:
  backlog-ops config check
  backlog-ops config render --input backlog.config.json --output litellm.yaml""",
    ),
    "backlog-ops config render": (
        "Write the LiteLLM proxy config (aliases, budgets, caching) from backlog.config.json.",
        """\
example:
  backlog-ops config render --input backlog.config.json --output litellm.yaml""",
    ),
    "backlog-ops config check": (
        "Validate backlog.config.json files, LiteLLM proxy configs and virtual_keys.yaml files.",
        """\
examples:
  backlog-ops config check
  backlog-ops config check backlog.config.json litellm.yaml""",
    ),
    "backlog-ops import": (
        "Import usage recorded outside the proxy into the ledger.",
        """\
example:
  backlog-ops import transcripts --dry-run""",
    ),
    "backlog-ops import transcripts": (
        "Import Claude Code's own usage from its JSONL transcripts, each request counted once.",
        """\
examples:
  backlog-ops import transcripts                  ~/.claude/projects
  backlog-ops import transcripts ~/.claude/projects/-home-me-my-api --json
  backlog-ops import transcripts --jobs 1         every file read in this one process""",
    ),
    "backlog-ops check-direct-calls": (
        "Warn about LLM provider calls that bypass both the gateway and track_llm_call.",
        """\
Mark a deliberate direct call with `# backlog-ops: allow-direct`.

examples:
  backlog-ops check-direct-calls src/
  backlog-ops check-direct-calls --strict          exit 1 when any is found (CI, pre-commit)""",
    ),
    "backlog-ops keys": (
        "Create, list and revoke LiteLLM virtual keys (needs a running proxy with a database).",
        """\
The master key is $LITELLM_MASTER_KEY, else the proxy's $BACKLOG_HOME/master-key; it is never printed.

examples:
  backlog-ops keys setup config/virtual_keys.yaml >> .env
  backlog-ops keys list
  backlog-ops keys revoke backlog-dev""",
    ),
    "backlog-ops fallbacks": (
        "Show the running proxy's fallbacks; change them while it runs (LiteLLM keeps changes in its database).",
        """\
The master key is $LITELLM_MASTER_KEY, else the proxy's $BACKLOG_HOME/master-key; it is never printed.

examples:
  backlog-ops fallbacks show
  backlog-ops fallbacks set cheap balanced frontier
  backlog-ops fallbacks remove cheap --type content_policy""",
    ),
    "backlog-ops fallbacks show": (
        "Each model's fallbacks (general, context-window, content-policy), as the running router has them.",
        """\
examples:
  backlog-ops fallbacks show
  backlog-ops fallbacks show cheap --type content_policy --json""",
    ),
    "backlog-ops fallbacks set": (
        "Make a model fall back to others, in order, without a restart (needs the proxy's database).",
        """\
examples:
  backlog-ops fallbacks set cheap balanced frontier
  backlog-ops fallbacks set cheap balanced --type content_policy""",
    ),
    "backlog-ops fallbacks remove": (
        "Remove a model's fallbacks of one type, without a restart (needs the proxy's database).",
        """\
examples:
  backlog-ops fallbacks remove cheap
  backlog-ops fallbacks remove balanced --type context_window""",
    ),
    "backlog-ops keys setup": (
        "Create the keys a virtual_keys.yaml describes that do not exist yet; print NAME=sk-… lines for .env.",
        """\
examples:
  backlog-ops keys setup >> .env
  backlog-ops keys setup config/virtual_keys.yaml --url http://127.0.0.1:4000 --wait 2m""",
    ),
    "backlog-ops keys list": (
        "List the proxy's virtual keys (aliases, budgets, spend; never a secret).",
        """\
examples:
  backlog-ops keys list
  backlog-ops keys list --json""",
    ),
    "backlog-ops keys revoke": (
        "Revoke virtual keys by alias.",
        """\
example:
  backlog-ops keys revoke backlog-dev tenant-123-key""",
    ),
    "backlog-ops demo": (
        "Play two scripted tickets through a real local proxy (offline mock provider) and print what each cost.",
        """\
examples:
  backlog-ops demo
  backlog-ops demo --keep-home                    keep the demo's BACKLOG_HOME to explore""",
    ),
    "backlog-ops doctor": (
        "Check the set-up: state and backends, the proxy, Claude Code integration; say what to run to fix each gap.",
        """\
Exit status 0 when all is well, 1 otherwise. The proxy URL is $BACKLOG_GATEWAY_URL, else
gateway.baseURL in ./backlog.config.json, else http://127.0.0.1:4000.

examples:
  backlog-ops doctor
  backlog-ops doctor --json""",
    ),
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples shown as written; an option's default appended when its help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = default not in (None, False, True, argparse.SUPPRESS, [], "")
        optional = bool(action.option_strings) or action.nargs in ("?", "*")
        if shown and optional and "default" not in text:
            text += " (default: %(default)s)"
        return text


class HelpfulParser(argparse.ArgumentParser):
    """An ArgumentParser whose help has a purpose, examples and defaults (sub-parsers are one too)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        purpose, examples = TEXTS.get(self.prog, (None, None))
        if purpose and not self.description:
            self.description = purpose
        if examples and not self.epilog:
            self.epilog = examples
