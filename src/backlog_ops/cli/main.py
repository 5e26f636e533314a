"""The `backlog-ops` command.

Sub-commands import what they need when they run, so `backlog-ops context …` starts fast and a
broken optional dependency breaks only the command that uses it.
"""

from __future__ import annotations

import os
import sys

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hook"] and not {"-h", "--help"} & set(argv[1:]):
        # Claude Code waits for every hook: this path imports neither argparse nor pydantic.
        from backlog_ops.hooks.entry import main as hook_main

        return hook_main(argv[1:])
    if argv[:1] == ["statusline"] and not {"-h", "--help"} & set(argv[1:]):
        # Claude Code runs the status line every few seconds: the same light path as the hooks.
        from backlog_ops.hooks.statusline import main as statusline_main

        return statusline_main(argv[1:])
    if argv == ["mcp"]:
        # Claude Code waits for the MCP server before a session's first request: no argparse, and
        # a launcher that hands the session to a resident server process when there is one.
        from backlog_ops.mcp_server.launcher import main as mcp_main

        return mcp_main()
    import argparse

    from backlog_ops.errors import BacklogOpsError

    parser = _parser(argparse)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        # A command group with no action (`backlog-ops context`): that group's help.
        getattr(args, "help_parser", parser).print_help(sys.stderr)
        return 2
    try:
        return args.run(args) or 0
    except BacklogOpsError as exc:
        from backlog_ops.common.secrets import scrub_dsn
        from backlog_ops.common.terminal import one_line

        # One line, no secret a backend echoed, no control character from stored data.
        print(f"backlog-ops: error: {one_line(scrub_dsn(exc))}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the user, the traceback on request
        from backlog_ops.common.settings import env_str

        if env_str("BACKLOG_DEBUG"):
            raise
        print(f"backlog-ops: internal error: {type(exc).__name__}: {str(exc)[:300]} "
              "(a bug in backlog-ops: run again with BACKLOG_DEBUG=1 for the traceback, and report it)", file=sys.stderr)
        return 1


def build_parser():
    """The whole argument parser, every sub-command included (the help test walks it)."""
    import argparse

    return _parser(argparse)


def _parser(argparse):
    from backlog_ops import __version__
    from backlog_ops.cli.help_texts import HelpfulParser

    parser = HelpfulParser(prog="backlog-ops")
    parser.add_argument("--version", action="version", version=f"backlog-ops {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    from backlog_ops.cli import context_cmd

    ctx_sub = _command_group(sub, "context", "set, clear or show the active ticket context", metavar="ACTION")

    p = ctx_sub.add_parser("set", help="set the context for the global, session or agent scope")
    p.add_argument("ticket", metavar="TICKET", help="ticket id such as FEAT-001 ('' for work on no ticket)")
    p.add_argument("gate", metavar="GATE", help="gate or phase, e.g. plan, implement, review")
    p.add_argument("agent", metavar="AGENT", help="agent type, e.g. backend, reviewer")
    p.add_argument("--skill", help="the skill at work, e.g. backlog-implementer (default: none)")
    p.add_argument("--project", help="default: project.name in ./backlog.config.json, else this directory's name")
    p.add_argument("--component", help="a part of the project, e.g. billing (default: none)")
    context_cmd.add_scope_args(p)
    p.add_argument("--ttl", type=_duration, metavar="DURATION",
                   help="expire after this long: 90m, 8h, 2d or seconds, at most 30d (default: $BACKLOG_CONTEXT_TTL, else 8h)")
    p.add_argument("--json", action="store_true", help="print the stored context as JSON")
    p.set_defaults(run=context_cmd.context_set)

    p = ctx_sub.add_parser("clear", help="clear the context of a scope")
    context_cmd.add_scope_args(p)
    p.add_argument("--all-agents", action="store_true", help="with --session: also clear every agent of the session")
    p.set_defaults(run=context_cmd.context_clear)

    p = ctx_sub.add_parser("show", help="show the context in force for a scope")
    context_cmd.add_scope_args(p)
    p.add_argument("--json", action="store_true", help="print the scope and its context as JSON")
    p.set_defaults(run=context_cmd.context_show)

    p = ctx_sub.add_parser("history", help="print the history of sets and clears")
    p.add_argument("--since", type=_since, metavar="WHEN", help="YYYY-MM-DD, an ISO time, or a span such as 24h, 7d (default: all)")
    p.add_argument("--json", action="store_true", help="print the entries as a JSON array instead of a table")
    p.set_defaults(run=context_cmd.context_history)

    p = ctx_sub.add_parser("shell-helper", help="print the path of the sourceable shell helper")
    p.set_defaults(run=context_cmd.context_shell_helper)

    p = ctx_sub.add_parser("resume", help="let a session paused by a runaway-spend alert call again")
    p.add_argument("--session", metavar="ID", help="the paused session (default: every paused session)")
    p.set_defaults(run=context_cmd.context_resume)

    p = sub.add_parser("spend", help="what tickets have cost, from the ledger: by ticket, day, model, gate, ...")
    p.add_argument("ticket", metavar="TICKET", nargs="?", help="one ticket, with its budget; '-' for calls made with no ticket")
    from backlog_ops.reports.views import GROUPS

    p.add_argument("--by", metavar="GROUP[,GROUP]",
                   help=f"one or two of {', '.join(GROUPS)} (default: ticket; gate for one TICKET)")
    _add_window(p)
    p.add_argument("--project", help="only this project's calls (default: every project)")
    p.add_argument("--top", type=_positive, metavar="N", help="the N most expensive first groups, the rest summed as (others)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of a table (the same fields as JSON)")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table for a pull request or ticket comment")
    p.set_defaults(run=_spend)

    p = sub.add_parser("report", help="spend per ticket as a self-contained HTML page with charts")
    p.add_argument("--project", help="only this project's calls (default: every project)")
    _add_window(p)
    from backlog_ops.cli.report_cmd import add_report_args

    add_report_args(p)
    p.set_defaults(run=_report)

    p = sub.add_parser("proxy", help="run the LiteLLM proxy with the backlog-ops callbacks")
    p.add_argument("--config", help="LiteLLM config (default: the shipped offline development config)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=4000, help="port to listen on")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on the one port, each accepting on a socket of its own, so the kernel "
                        "spreads connections over them (default: 1); budgets are shared exactly "
                        "between them with BACKLOG_CONTEXT_URL set (the team's Redis)")
    p.set_defaults(run=_proxy)

    p = sub.add_parser("hook", help="Claude Code hook entry point: reads the hook's JSON on stdin")
    p.add_argument("event", nargs="?", help="hook event name (default: hook_event_name from stdin)")

    p = sub.add_parser("statusline", help="Claude Code status line: ticket, gate, agent and spend of the session on stdin")
    p.add_argument("--with", metavar="COMMAND", dest="other", help="show this status line command's output first (same stdin)")

    p = sub.add_parser("mcp", help="run the backlog-ops MCP server on stdio")
    p.set_defaults(run=_mcp)

    p = sub.add_parser("install", help="wire the MCP server, hooks and skills into a project or the user's settings")
    p.add_argument("--scope", choices=["project", "user"], default="project", help="this project, or every project of the user")
    p.add_argument("--dir", default=".", help="project directory (default: .)")
    p.add_argument("--uninstall", action="store_true", help="remove exactly what install added")
    p.set_defaults(run=_install)

    cfg_sub = _command_group(sub, "config", "render and check backlog.config.json and LiteLLM proxy configs", metavar="ACTION")
    p = cfg_sub.add_parser("render", help="write the LiteLLM proxy config from backlog.config.json")
    p.add_argument("--input", default="backlog.config.json", help="the project's backlog.config.json")
    p.add_argument("--output", "-o", default="-", help="file to write ('-' for stdout)")
    p.set_defaults(run=_config_render)
    p = cfg_sub.add_parser("check", help="validate backlog.config.json files and proxy configs")
    p.add_argument("files", nargs="*", metavar="FILE", help="files to check (backlog.config.json, proxy configs, virtual_keys.yaml)")
    p.set_defaults(run=_config_check)

    imp_sub = _command_group(sub, "import", "import usage recorded outside the proxy into the ledger", metavar="SOURCE")
    p = imp_sub.add_parser("transcripts", help="Claude Code JSONL transcripts (default ~/.claude/projects)")
    p.add_argument("path", nargs="?", help="a transcripts directory or one .jsonl file")
    p.add_argument("--dry-run", action="store_true", help="report what would be imported, write nothing")
    p.add_argument("--json", action="store_true", help="print the import report as JSON")
    p.add_argument("--jobs", type=_positive, metavar="N",
                   help="processes reading the files (default: one per idle core for a large import; 1: no others)")
    p.set_defaults(run=_import_transcripts)

    p = sub.add_parser("check-direct-calls", help="warn about LLM provider calls that bypass the gateway and track_llm_call")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: .)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any direct call is found")
    p.set_defaults(run=_check_direct_calls)

    keys_sub = _command_group(sub, "keys", "LiteLLM virtual keys per environment or tenant (needs the proxy's database)", metavar="ACTION")
    p = keys_sub.add_parser("setup", help="create the keys described in a virtual_keys.yaml (idempotent)")
    p.add_argument("file", nargs="?", default="config/virtual_keys.yaml", help="the keys to create")
    _add_url(p)
    p.add_argument("--wait", type=_seconds, default=60.0, metavar="DURATION",
                   help="how long to wait for the proxy to be ready: seconds, or 90s, 2m (default: 60 s)")
    p.set_defaults(run=_keys, action="setup")
    p = keys_sub.add_parser("list", help="list the virtual keys")
    _add_url(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_keys, action="list")
    p = keys_sub.add_parser("revoke", help="revoke keys by alias")
    p.add_argument("aliases", nargs="+", metavar="ALIAS", help="key_alias of each key to revoke")
    _add_url(p)
    p.set_defaults(run=_keys, action="revoke")

    fb_sub = _command_group(sub, "fallbacks", "show or change the running proxy's fallbacks (changes need its database)", metavar="ACTION")
    fb_types = ("general", "context_window", "content_policy")
    p = fb_sub.add_parser("show", help="each model's fallbacks, as the running router has them")
    p.add_argument("models", nargs="*", metavar="MODEL", help="model names (default: cheap balanced frontier)")
    p.add_argument("--type", choices=(*fb_types, "all"), default="all", help="which fallbacks")
    _add_url(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_fallbacks, action="show")
    p = fb_sub.add_parser("set", help="make MODEL fall back to TARGET... (needs the proxy's database)")
    p.add_argument("model", metavar="MODEL", help="the model name that fails, e.g. cheap")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="model names to try next, in order")
    p.add_argument("--type", choices=fb_types, default="general", help="on which errors")
    _add_url(p)
    p.set_defaults(run=_fallbacks, action="set")
    p = fb_sub.add_parser("remove", help="remove MODEL's fallbacks (needs the proxy's database)")
    p.add_argument("model", metavar="MODEL", help="the model name, e.g. cheap")
    p.add_argument("--type", choices=fb_types, default="general", help="which fallbacks")
    _add_url(p)
    p.set_defaults(run=_fallbacks, action="remove")

    p = sub.add_parser("demo", help="run a scripted two-ticket scenario through a local proxy and print spend")
    p.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    p.add_argument("--keep-home", action="store_true", help="keep the demo's temporary BACKLOG_HOME")
    p.set_defaults(run=_demo)

    p = sub.add_parser("doctor", help="check the set-up and say what to run to fix each gap")
    p.add_argument("--url", type=_url, default=None, help="the proxy to check (default: $BACKLOG_GATEWAY_URL, else "
                   "gateway.baseURL in ./backlog.config.json, else http://127.0.0.1:4000)")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(run=_doctor)
    return parser


def _command_group(sub, name: str, summary: str, *, metavar: str):
    """A command whose actions are subcommands (`backlog-ops context set`); alone it prints its help."""
    group = sub.add_parser(name, help=summary)
    group.set_defaults(help_parser=group)
    return group.add_subparsers(metavar=metavar)


def _add_url(p) -> None:
    p.add_argument("--url", type=_url, default=None,
                   help="proxy base URL (default: $LITELLM_BASE_URL, else http://127.0.0.1:4000)")


def _add_window(p) -> None:
    """--since and --until, as `spend` and `report` read them."""
    p.add_argument("--since", type=_since, metavar="WHEN",
                   help="YYYY-MM-DD, an ISO time, or a span back from now such as 24h, 7d (default: all time)")
    p.add_argument("--until", type=_until, metavar="WHEN",
                   help="the same forms; a date includes that whole day (default: now)")


def _duration(text: str) -> int:
    """Seconds in a duration of the one grammar (90m, 8h, 7d) or plain seconds."""
    import argparse

    from backlog_ops.common.times import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _url(text: str) -> str:
    """A proxy address such as http://127.0.0.1:4000."""
    import argparse

    from backlog_ops.gateway.status import url_problem

    problem = url_problem(text.strip())
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text.strip().rstrip("/")


def _seconds(text: str) -> float:
    """A wait: plain seconds (fractions too, e.g. 0.5) or a duration such as 2m."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float(_duration(text))
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 0 to 86400 seconds")
    return value


def _until(text: str) -> str:
    """`text` itself once it reads as a time (spend_view reads a bare date as that whole day)."""
    _since(text)
    return text


def _positive(text: str) -> int:
    import argparse

    if not (text.strip().isdigit() and text.strip().isascii()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number of at least 1")
    return int(text)


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


def _report(args) -> int:
    from backlog_ops.cli.report_cmd import run_report

    return run_report(args)


# -- Claude Code integration and gateway config (each module owns its command) ---------------


def _mcp(args) -> int:
    from backlog_ops.mcp_server.launcher import main as mcp_main

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

    return run_import(path=args.path, dry_run=args.dry_run, as_json=args.json, jobs=args.jobs)


def _check_direct_calls(args) -> int:
    from backlog_ops.cli.check_cmd import run_check

    return run_check(args.paths or ["."], strict=args.strict)


def _keys(args) -> int:
    from backlog_ops.cli.keys_cmd import run_keys

    return run_keys(args)


def _fallbacks(args) -> int:
    from backlog_ops.cli.fallbacks_cmd import run_fallbacks

    return run_fallbacks(args)


# -- proxy and demo --------------------------------------------------------------------------


def _proxy(args) -> int:
    from backlog_ops.gateway.proxy import run_proxy

    return run_proxy(config=args.config, host=args.host, port=args.port, workers=args.workers)


def _demo(args) -> int:
    from backlog_ops.cli.demo import run_demo

    return run_demo(port=args.port, keep_home=args.keep_home)


def _doctor(args) -> int:
    from backlog_ops.cli.doctor_cmd import run_doctor

    return run_doctor(url=args.url, as_json=args.json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
