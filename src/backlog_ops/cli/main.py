"""The `backlog-ops` command.

Sub-commands import what they need when they run, so `backlog-ops context …` starts fast and a
broken optional dependency breaks only the command that uses it.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"]:
        # Claude Code waits for every hook: this path imports neither argparse nor pydantic.
        from backlog_ops.hooks.entry import main as hook_main

        return hook_main(argv[1:])
    if argv[:1] == ["statusline"] and not {"-h", "--help"} & set(argv[1:]):
        # Claude Code runs the status line every few seconds: the same light path as the hooks.
        from backlog_ops.hooks.statusline import main as statusline_main

        return statusline_main(argv[1:])
    import argparse

    from backlog_ops.errors import BacklogOpsError

    parser = _parser(argparse)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except BacklogOpsError as exc:
        print(f"backlog-ops: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except KeyboardInterrupt:
        return 130


def _parser(argparse):
    from backlog_ops import __version__

    parser = argparse.ArgumentParser(
        prog="backlog-ops",
        description="Attribute LLM spend to tickets, gates, projects, agents and skills through a LiteLLM proxy.",
    )
    parser.add_argument("--version", action="version", version=f"backlog-ops {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    from backlog_ops.cli import context_cmd

    ctx = sub.add_parser("context", help="set, clear or show the active ticket context")
    ctx_sub = ctx.add_subparsers(metavar="ACTION")

    p = ctx_sub.add_parser("set", help="set the context for the global, session or agent scope")
    p.add_argument("ticket", metavar="TICKET", help="ticket id such as FEAT-001 ('' for work on no ticket)")
    p.add_argument("gate", metavar="GATE", help="gate or phase, e.g. plan, implement, review")
    p.add_argument("agent", metavar="AGENT", help="agent type, e.g. backend, reviewer")
    p.add_argument("--skill")
    p.add_argument("--project", help="default: project.name in ./backlog.config.json, else this directory's name")
    p.add_argument("--component")
    context_cmd.add_scope_args(p)
    p.add_argument("--ttl", type=_positive_int, metavar="SECONDS", help="expire after this long (default 8 h)")
    p.add_argument("--json", action="store_true", help="print the stored context as JSON")
    p.set_defaults(run=context_cmd.context_set)

    p = ctx_sub.add_parser("clear", help="clear the context of a scope")
    context_cmd.add_scope_args(p)
    p.add_argument("--all-agents", action="store_true", help="with --session: also clear every agent of the session")
    p.set_defaults(run=context_cmd.context_clear)

    p = ctx_sub.add_parser("show", help="show the context in force for a scope")
    context_cmd.add_scope_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=context_cmd.context_show)

    p = ctx_sub.add_parser("history", help="print the history of sets and clears")
    p.add_argument("--since", type=_since, metavar="DATE", help="YYYY-MM-DD, an ISO time, or 24h / 7d")
    p.set_defaults(run=context_cmd.context_history)

    p = ctx_sub.add_parser("shell-helper", help="print the path of the sourceable shell helper")
    p.set_defaults(run=context_cmd.context_shell_helper)

    p = ctx_sub.add_parser("resume", help="let a session paused by a runaway-spend alert call again")
    p.add_argument("--session", metavar="ID", help="the paused session (default: every paused session)")
    p.set_defaults(run=context_cmd.context_resume)

    p = sub.add_parser("spend", help="what tickets have cost, from the ledger")
    p.add_argument("ticket", metavar="TICKET", nargs="?", help="one ticket; '-' for calls made with no ticket")
    from backlog_ops.ledger.queries import GROUPS

    p.add_argument("--by", choices=sorted(GROUPS), default="gate", help="breakdown for one ticket (default: gate)")
    p.add_argument("--project")
    p.add_argument("--since", type=_since, metavar="DATE", help="YYYY-MM-DD, an ISO time, or 24h / 7d")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p.set_defaults(run=_spend)

    p = sub.add_parser("proxy", help="run the LiteLLM proxy with the backlog-ops callbacks")
    p.add_argument("--config", help="LiteLLM config (default: the shipped offline development config)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4000)
    p.set_defaults(run=_proxy)

    p = sub.add_parser("hook", help="Claude Code hook entry point: reads the hook's JSON on stdin")
    p.add_argument("event", nargs="?", help="hook event name (default: hook_event_name from stdin)")

    p = sub.add_parser("statusline", help="Claude Code status line: ticket, gate, agent and spend of the session on stdin")
    p.add_argument("--with", metavar="COMMAND", dest="other", help="show this status line command's output first (same stdin)")

    p = sub.add_parser("mcp", help="run the backlog-ops MCP server on stdio")
    p.set_defaults(run=_mcp)

    p = sub.add_parser("install", help="wire the MCP server, hooks and skills into a project or the user's settings")
    p.add_argument("--scope", choices=["project", "user"], default="project")
    p.add_argument("--dir", default=".", help="project directory (default: .)")
    p.add_argument("--uninstall", action="store_true", help="remove exactly what install added")
    p.set_defaults(run=_install)

    cfg = sub.add_parser("config", help="render and check backlog.config.json and LiteLLM proxy configs")
    cfg_sub = cfg.add_subparsers(metavar="ACTION")
    p = cfg_sub.add_parser("render", help="write the LiteLLM proxy config from backlog.config.json")
    p.add_argument("--input", default="backlog.config.json")
    p.add_argument("--output", "-o", default="-", help="file to write ('-' for stdout)")
    p.set_defaults(run=_config_render)
    p = cfg_sub.add_parser("check", help="validate backlog.config.json files and proxy configs")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.set_defaults(run=_config_check)

    imp = sub.add_parser("import", help="import usage recorded outside the proxy into the ledger")
    imp_sub = imp.add_subparsers(metavar="SOURCE")
    p = imp_sub.add_parser("transcripts", help="Claude Code JSONL transcripts (default ~/.claude/projects)")
    p.add_argument("path", nargs="?", help="a transcripts directory or one .jsonl file")
    p.add_argument("--dry-run", action="store_true", help="report what would be imported, write nothing")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p.set_defaults(run=_import_transcripts)

    p = sub.add_parser("check-direct-calls", help="warn about LLM provider calls that bypass the gateway and track_llm_call")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any direct call is found")
    p.set_defaults(run=_check_direct_calls)

    keys = sub.add_parser("keys", help="LiteLLM virtual keys per environment or tenant (needs the proxy's database)")
    keys_sub = keys.add_subparsers(metavar="ACTION")
    p = keys_sub.add_parser("setup", help="create the keys described in a virtual_keys.yaml (idempotent)")
    p.add_argument("file", nargs="?", default="config/virtual_keys.yaml")
    p.add_argument("--url", default=None, help="proxy base URL (default: $LITELLM_BASE_URL or http://127.0.0.1:4000)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the proxy to be ready")
    p.set_defaults(run=_keys, action="setup")
    p = keys_sub.add_parser("list", help="list the virtual keys")
    p.add_argument("--url", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=_keys, action="list")
    p = keys_sub.add_parser("revoke", help="revoke keys by alias")
    p.add_argument("aliases", nargs="+", metavar="ALIAS")
    p.add_argument("--url", default=None)
    p.set_defaults(run=_keys, action="revoke")

    p = sub.add_parser("demo", help="run a scripted two-ticket scenario through a local proxy and print spend")
    p.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    p.add_argument("--keep-home", action="store_true", help="keep the demo's temporary BACKLOG_HOME")
    p.set_defaults(run=_demo)
    return parser


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _since(text: str) -> str:
    import argparse

    from backlog_ops.common.times import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- spend -----------------------------------------------------------------------------------


def _spend(args) -> int:
    from backlog_ops.cli.spend_cmd import print_spend

    return print_spend(args)


# -- Claude Code integration and gateway config (each module owns its command) ---------------


def _mcp(args) -> int:
    from backlog_ops.mcp_server.server import main as mcp_main

    return mcp_main()


def _install(args) -> int:
    from backlog_ops.cli.install_cmd import run_install

    return run_install(scope=args.scope, directory=args.dir, uninstall=args.uninstall)


def _config_render(args) -> int:
    from backlog_ops.cli.config_cmd import run_render

    return run_render(input_path=args.input, output=args.output)


def _config_check(args) -> int:
    from backlog_ops.cli.config_cmd import run_check

    return run_check(args.files)


def _import_transcripts(args) -> int:
    from backlog_ops.cli.import_cmd import run_import

    return run_import(path=args.path, dry_run=args.dry_run, as_json=args.json)


def _check_direct_calls(args) -> int:
    from backlog_ops.cli.check_cmd import run_check

    return run_check(args.paths or ["."], strict=args.strict)


def _keys(args) -> int:
    from backlog_ops.cli.keys_cmd import run_keys

    return run_keys(args)


# -- proxy and demo --------------------------------------------------------------------------


def _proxy(args) -> int:
    from backlog_ops.gateway.proxy import run_proxy

    return run_proxy(config=args.config, host=args.host, port=args.port)


def _demo(args) -> int:
    from backlog_ops.cli.demo import run_demo

    return run_demo(port=args.port, keep_home=args.keep_home)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
