"""A Claude Code-shaped transcript corpus for the import benchmarks, deterministic for a seed.

    .venv/bin/python bench/transcript_corpus.py OUT_DIR [--files 400] [--mb 186] [--requests 97500] [--seed 13]

Writes ``OUT_DIR/projects/<project-dir>/<session>.jsonl`` (main threads) and
``<project-dir>/<session>/subagents/agent-<id>.jsonl`` (subagents, ``isSidechain: true``,
``agentId``), in the shape Claude Code 2.x writes them (see tests/test_transcripts.py): every line carries ``parentUuid``, ``isSidechain``, ``userType``,
``cwd``, ``sessionId``, ``version``, ``gitBranch``, ``uuid`` and ``timestamp``; a response is
written over one to three assistant lines (thinking, text, tool_use blocks) that share
``message.id``, ``requestId`` and the same ``message.usage`` (with ``cache_creation`` and
``service_tier``); user lines carry tool results (sizes drawn from a heavy-tailed distribution,
repeated in ``toolUseResult`` as Claude Code does) and no usage, some of them quoting API
responses that contain the word "usage"; summary, file-history-snapshot and system lines; now and
then a ``<synthetic>`` API-error message with zero usage and no requestId. Session sizes are
skewed (a few long sessions, many short ones).

The default is the shape of the corpus in issue 13: 400 files, about 290k lines and 97,500
requests; --mb 186 is a target the tool results are sized towards, but with every line carrying
Claude Code's full metadata the corpus comes out at ~212 MB (the issue's lines were leaner).
It is data this project wrote itself: a regression guard, not evidence about anyone's real
transcripts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Corpus", "write_corpus"]

T0 = 1_780_000_000  # 2026-05-28T20:26:40Z
VERSION = "2.1.197"
MAIN_MODELS = (("claude-sonnet-4-5-20250929", 0.72), ("claude-opus-4-6", 0.25), ("claude-opus-4-1-20250805", 0.03))
AGENT_MODELS = (("claude-haiku-4-5-20251001", 0.5), ("claude-sonnet-4-5-20250929", 0.5))
TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob", "Write", "TodoWrite")
WORDS = ("the", "request", "handler", "returns", "a", "list", "of", "tickets", "with", "their", "gate", "and",
         "cost", "test", "passes", "now", "fix", "import", "ledger", "row", "session", "context", "file")


@dataclass
class Corpus:
    """What was written: the files, lines, requests, bytes, and each session's project directory."""

    root: Path
    files: int = 0
    lines: int = 0
    requests: int = 0
    bytes: int = 0
    project_of: dict[str, str] = field(default_factory=dict)  # session id -> project directory name
    target_per_request: float = 0.0  # bytes per request the corpus aims at
    largest: Path | None = None


def _stamp(t: float) -> str:
    whole = int(t)
    millis = int((t - whole) * 1000)
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def _pick(rng: random.Random, weighted) -> str:
    x = rng.random()
    for value, weight in weighted:
        x -= weight
        if x <= 0:
            return value
    return weighted[-1][0]


class _Writer:
    """One transcript file being written."""

    def __init__(self, path: Path, corpus: Corpus, rng: random.Random, session: str, agent: str | None,
                 cwd: str, branch: str, t: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "w", encoding="utf-8")
        self.path, self.corpus, self.rng = path, corpus, rng
        self.session, self.agent, self.cwd, self.branch = session, agent, cwd, branch
        self.t = t
        self.parent: str | None = None
        self.size = 0
        corpus.files += 1

    def line(self, entry: dict) -> None:
        text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"
        self.fh.write(text)
        self.size += len(text.encode())
        self.corpus.lines += 1

    def base(self, kind: str) -> dict:
        uid = _uuid(self.rng)
        entry = {"parentUuid": self.parent, "isSidechain": self.agent is not None, "userType": "external",
                 "cwd": self.cwd, "sessionId": self.session, "version": VERSION, "gitBranch": self.branch}
        if self.agent:
            entry["agentId"] = self.agent
        entry["type"] = kind
        entry["uuid"] = uid
        entry["timestamp"] = _stamp(self.t)
        self.parent = uid
        return entry

    def user_prompt(self) -> None:
        entry = self.base("user")
        entry["message"] = {"role": "user", "content": _words(self.rng, self.rng.randint(5, 60))}
        self.line(entry)

    def tool_result(self, tool_id: str) -> None:
        rng = self.rng
        # Feedback towards the corpus's target size: results grow while the corpus is behind it.
        corpus = self.corpus
        behind = corpus.target_per_request * corpus.requests - (corpus.bytes + self.size)
        mean = max(20.0, corpus.target_per_request * 0.15 + behind / 200)
        size = int(min(rng.lognormvariate(0, 1.0) * mean / 1.65, 400_000))
        if rng.random() < 0.05:
            # A tool result quoting an API response: the word "usage" in a line that has none.
            body = ('{"id":"msg_x","usage":{"input_tokens":12,"output_tokens":3}} "usage": ' + "y" * size)[:max(size, 80)]
        else:
            body = ("".join(rng.choice("abcdefghij \n") for _ in range(64)) * (size // 64 + 1))[:size]
        entry = self.base("user")
        entry["message"] = {"role": "user", "content": [{"tool_use_id": tool_id, "type": "tool_result",
                                                         "content": body, "is_error": False}]}
        if rng.random() < 0.3:  # Bash results are repeated in toolUseResult
            entry["toolUseResult"] = {"stdout": body, "stderr": "", "interrupted": False, "isImage": False}
        self.line(entry)

    def response(self, model: str, context: int) -> str | None:
        """One API response over 1-3 lines sharing id, requestId and usage; the tool_use id, if any."""
        rng = self.rng
        self.t += rng.uniform(2, 40)
        message_id = "msg_01" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789")
                                        for _ in range(22))
        request_id = "req_011C" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789")
                                          for _ in range(20))
        write = rng.choice((0, 0, 0, rng.randint(100, 8000)))
        usage = {"input_tokens": rng.randint(1, 12), "cache_creation_input_tokens": write,
                 "cache_read_input_tokens": context,
                 "cache_creation": {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0},
                 "output_tokens": rng.randint(1, 2500), "service_tier": "standard"}
        blocks = []
        if rng.random() < 0.12:
            blocks.append({"type": "thinking", "thinking": _words(rng, rng.randint(5, 60)), "signature": "Eq" + "x" * 80})
        if rng.random() < 0.4:
            blocks.append({"type": "text", "text": _words(rng, rng.randint(3, 40))})
        tool_id = None
        if rng.random() < 0.85 or not blocks:
            tool_id = f"toolu_01{rng.getrandbits(80):020x}"
            tool = rng.choice(TOOLS)
            blocks.append({"type": "tool_use", "id": tool_id, "name": tool,
                           "input": {"file_path": f"{self.cwd}/src/{rng.choice(WORDS)}.py"} if tool != "Bash"
                           else {"command": "pytest -q tests/", "description": "run the tests"}})
        for i, block in enumerate(blocks):
            last = i == len(blocks) - 1
            entry = self.base("assistant")
            entry["message"] = {"id": message_id, "type": "message", "role": "assistant", "model": model,
                                "content": [block], "stop_reason": ("tool_use" if tool_id else "end_turn") if last else None,
                                "stop_sequence": None, "usage": usage}
            entry["requestId"] = request_id
            entry["timestamp"] = _stamp(self.t + i * 0.4)
            self.line(entry)
        self.corpus.requests += 1
        return tool_id

    def hook_progress(self, tool_id: str) -> None:
        entry = self.base("progress")
        entry["data"] = {"type": "hook_progress", "hookEvent": "PostToolUse"}
        entry["toolUseID"] = tool_id
        self.line(entry)

    def synthetic(self) -> None:
        entry = self.base("assistant")
        entry["message"] = {"id": _uuid(self.rng), "model": "<synthetic>", "role": "assistant", "stop_reason": "stop_sequence",
                            "stop_sequence": "", "type": "message",
                            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 0, "server_tool_use": {"web_search_requests": 0},
                                      "service_tier": None},
                            "content": [{"type": "text", "text": "API Error: 529 overloaded"}]}
        entry["isApiErrorMessage"] = True
        self.line(entry)

    def conversation(self, requests: int, models) -> None:
        """`requests` API responses, with prompts, tool results and the odd housekeeping line."""
        rng = self.rng
        context = rng.randint(12_000, 20_000)
        self.user_prompt()
        for n in range(requests):
            model = _pick(rng, models)
            tool_id = self.response(model, context)
            context += rng.randint(200, 3000)
            if context > 160_000:
                context = rng.randint(15_000, 30_000)  # compacted
                if not self.agent:
                    entry = self.base("system")
                    entry.update(subtype="compact_boundary", content="Conversation compacted", level="info")
                    self.line(entry)
            if n == requests - 1:
                break
            if tool_id:
                if rng.random() < 0.6:
                    self.hook_progress(tool_id)
                self.tool_result(tool_id)
            else:
                self.user_prompt()
            if rng.random() < 0.004:
                self.synthetic()
            if not self.agent and rng.random() < 0.01:
                self.line({"type": "file-history-snapshot", "messageId": _uuid(rng),
                           "snapshot": {"messageId": _uuid(rng), "trackedFileBackups": {}, "timestamp": _stamp(self.t)},
                           "isSnapshotUpdate": False})

    def close(self) -> None:
        self.fh.close()
        self.corpus.bytes += self.size
        if self.corpus.largest is None or self.size > self.corpus.largest.stat().st_size:
            self.corpus.largest = self.path


def _split(total: int, weights: list[float]) -> list[int]:
    """`total` split in proportion to `weights`, each part at least 1, summing to `total`."""
    scale = sum(weights)
    parts = [max(1, int(total * w / scale)) for w in weights]
    i = 0
    while sum(parts) != total:
        step = 1 if sum(parts) < total else -1
        if parts[i % len(parts)] + step >= 1:
            parts[i % len(parts)] += step
        i += 1
    return parts


def write_corpus(out: Path, *, files: int = 400, megabytes: float = 186.0, requests: int = 97_500, seed: int = 13,
                 projects: int = 12) -> Corpus:
    """Write the corpus under `out`/projects; what was written."""
    rng = random.Random(seed)
    root = out / "projects"
    corpus = Corpus(root, target_per_request=megabytes * 1e6 / max(requests, 1))
    sessions = max(1, files // 2)
    agents = max(0, files - sessions)
    weights = [rng.lognormvariate(0, 1.2) for _ in range(sessions + agents)]
    counts = _split(requests, weights)
    owners = [rng.randrange(sessions) for _ in range(agents)]
    dirs = [f"-home-dev-{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}" for i in range(projects)]
    t = float(T0)
    for s in range(sessions):
        session = _uuid(rng)
        project = dirs[s % projects]
        corpus.project_of[session] = project
        cwd = "/" + project.lstrip("-").replace("-", "/")
        branch = rng.choice(("main", f"feat/FEAT-{100 + s}-work", f"fix/BUG-{s}"))
        main = _Writer(root / project / f"{session}.jsonl", corpus, rng, session, None, cwd, branch, t)
        main.line({"type": "summary", "summary": _words(rng, 6), "leafUuid": _uuid(rng)})
        main.conversation(counts[s], MAIN_MODELS)
        for a, owner in enumerate(owners):
            if owner != s:
                continue
            agent = f"a{rng.getrandbits(64):016x}"
            sub = _Writer(root / project / session / "subagents" / f"agent-{agent}.jsonl", corpus, rng, session, agent,
                          cwd, branch, t + rng.uniform(0, max(1.0, main.t - t)))
            sub.conversation(counts[sessions + a], AGENT_MODELS)
            sub.close()
        main.close()
        t = main.t + rng.uniform(60, 3600)
    return corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--mb", type=float, default=186.0)
    parser.add_argument("--requests", type=int, default=97_500)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    corpus = write_corpus(args.out, files=args.files, megabytes=args.mb, requests=args.requests, seed=args.seed)
    print(f"{corpus.files} files, {corpus.bytes / 1e6:.1f} MB, {corpus.lines:,} lines, {corpus.requests:,} requests "
          f"under {corpus.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
