"""The proxy at the configured URL: does it answer, in which mode, with which keys missing.

The URL is the one given, else $BACKLOG_GATEWAY_URL (its first entry), else llmOps.gateway.baseURL
in ./backlog.config.json, else http://127.0.0.1:4000. The mode comes from the status a
`backlog-ops proxy` serves (gateway/status.py); another LiteLLM proxy is described from its
/model/info when the master key is accepted.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from backlog_ops.common.settings import Settings
from backlog_ops.doctor.report import INFO, OK, PROBLEM, Check
from backlog_ops.errors import BacklogOpsError
from backlog_ops.gateway.key_api import DEFAULT_URL
from backlog_ops.gateway.master_key import KEY_FILE
from backlog_ops.gateway.status import probe, url_problem
from backlog_ops.project.file import CONFIG_FILE

__all__ = ["START_HINT", "gateway_checks", "gateway_url"]

START_HINT = ("start it: `backlog-ops proxy` (offline mock provider), or "
              "`backlog-ops proxy --config litellm.yaml` (real providers; `backlog-ops config render -o litellm.yaml`)")
_REQUIRED_CALLBACKS = ("backlog_ops.callbacks.ticket_tagger.ticket_tagger", "backlog_ops.callbacks.spend_ledger.spend_ledger")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def gateway_url(explicit: str | None, directory: Path, environ=None) -> tuple[str, str, Check | None]:
    """(url, where it came from, a Check when backlog.config.json could not be read)."""
    if explicit:
        return explicit.rstrip("/"), "--url", None
    conf = Settings(environ)
    if conf.gateway_url:
        first = conf.gateway_url.split(",")[0].strip()
        if first:
            return first.rstrip("/"), "BACKLOG_GATEWAY_URL", None
    config = directory / CONFIG_FILE
    if config.is_file():
        from backlog_ops.project.schema import load_backlog_config

        try:
            url = load_backlog_config(config).llmOps.gateway.baseURL
        except BacklogOpsError as exc:
            first_problem = str(exc).splitlines()[0] if str(exc) else "invalid"
            return DEFAULT_URL, "the default", Check(
                "gateway", "project config", PROBLEM, f"{config}: {first_problem}", fix=f"backlog-ops config check {config}",
            )
        return url, f"llmOps.gateway.baseURL in {config}", None
    return DEFAULT_URL, "the default", None


def gateway_checks(explicit: str | None, directory: Path, *, environ=None) -> tuple[list[Check], str]:
    """The checks of the proxy, and the URL they looked at."""
    url, source, config_problem = gateway_url(explicit, directory, environ)
    checks = [config_problem] if config_problem else []
    key, key_source = _master_key(environ)
    shown = _show_url(url)
    found = probe(url, key)
    facts = {"url": shown, "url_source": source}
    if url_problem(url):
        checks.append(Check("gateway", "proxy", PROBLEM, f"the proxy URL from {source} is wrong: {url_problem(url)}",
                            fix="pass --url http://127.0.0.1:4000, or correct the setting named", facts=facts))
        return checks, url
    if not found.answers:
        if found.reachable:
            checks.append(Check("gateway", "proxy", PROBLEM, f"something answers at {shown} ({source}), but not as a LiteLLM "
                                f"proxy: {found.problem}", fix="check the URL: the proxy's address and port", facts=facts))
        else:
            checks.append(Check("gateway", "proxy", PROBLEM, f"no proxy answers at {shown} ({source}): {found.problem}",
                                fix=START_HINT, facts=facts))
        return checks, url
    checks.append(Check("gateway", "proxy", OK, f"a proxy answers at {shown} ({source})", facts=facts))
    checks.append(_mode(found))
    if found.status is not None:
        callbacks = found.status.get("callbacks") or []
        missing = [c for c in _REQUIRED_CALLBACKS if c not in callbacks]
        if missing:
            checks.append(Check("gateway", "callbacks", PROBLEM,
                                f"the proxy's config does not load {', '.join(missing)}: its calls are not attributed or not recorded",
                                fix="render the config with `backlog-ops config render -o litellm.yaml` (it wires them), "
                                    "or add them to litellm_settings.callbacks; then restart the proxy",
                                facts={"callbacks": callbacks}))
    checks.append(_key_check(found.key_accepted, key_source))
    return checks, url


def _mode(found) -> Check:
    status = found.status
    if status is not None:
        facts = {k: status.get(k) for k in ("mode", "config", "providers", "missing_keys")}
        if status.get("mode") == "mock":
            return Check("gateway", "mode", OK, "offline mock provider: answers are fake, no provider is called "
                         "(for real providers: `backlog-ops config render -o litellm.yaml`, then `backlog-ops proxy --config litellm.yaml`)",
                         facts=facts)
        providers = ", ".join(status.get("providers") or []) or "no provider"
        missing = status.get("missing_keys") or []
        summary = f"real providers ({providers}) from {status.get('config')}"
        if missing:
            names = ", ".join(missing)
            exports = " ".join(f"{name}=…" for name in missing)
            return Check("gateway", "mode", PROBLEM, f"{summary}; missing in the proxy's environment: {names}",
                         fix=f"export {exports} (or put them in .env) where the proxy runs, then restart it", facts=facts)
        return Check("gateway", "mode", OK, f"{summary}; every provider key is set", facts=facts)
    if found.status_problem == "no answer in time":
        return Check("gateway", "mode", INFO, "the proxy did not say its mode in time (busy starting?): run doctor again")
    if found.models:
        providers = sorted({str(m.get("litellm_params", {}).get("model", "")).split("/", 1)[0] for m in found.models} - {""})
        local = all(_is_loopback((m.get("litellm_params") or {}).get("api_base")) for m in found.models)
        kind = "every deployment points at a local endpoint (a mock or a local model)" if local else "real providers"
        return Check("gateway", "mode", INFO, f"not a `backlog-ops proxy`: {kind} ({', '.join(providers) or 'no models'}); "
                     "it cannot say which provider keys it lacks", facts={"providers": providers})
    return Check("gateway", "mode", INFO, "not a `backlog-ops proxy` (it serves no status): its mode is unknown")


def _key_check(accepted: bool | None, source: str | None) -> Check:
    if accepted is True:
        return Check("gateway", "master key", OK, f"the proxy accepts the master key from {source}")
    if accepted is False:
        return Check("gateway", "master key", PROBLEM, f"the proxy refuses the master key from {source}",
                     fix="use the key the proxy runs with: the same BACKLOG_HOME (its master-key file) or LITELLM_MASTER_KEY")
    if source is None:
        return Check("gateway", "master key", INFO, "no master key here (LITELLM_MASTER_KEY is unset and the home has no "
                     "master-key file): the key a proxy uses could not be tried")
    return Check("gateway", "master key", INFO, f"the master key from {source} could not be tried (/model/info did not answer)")


def _master_key(environ=None) -> tuple[str | None, str | None]:
    """(key, where it is kept) without generating one; the key itself is never shown."""
    env = os.environ if environ is None else environ
    if env.get("LITELLM_MASTER_KEY"):
        return env["LITELLM_MASTER_KEY"], "LITELLM_MASTER_KEY"
    path = Path(Settings(environ).home) / KEY_FILE
    try:
        key = path.read_text().strip()
    except OSError:
        return None, None
    return (key, str(path)) if key else (None, None)


def _is_loopback(url: object) -> bool:
    try:
        return isinstance(url, str) and (urlsplit(url).hostname or "") in _LOOPBACK
    except ValueError:
        return False


def _show_url(url: str) -> str:
    """The URL without any user:password part."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" in parts.netloc:
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[1]}{parts.path}"
    return url
