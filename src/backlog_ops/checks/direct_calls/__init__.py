"""Find LLM calls that neither the gateway nor track_llm_call sees (`backlog-ops check-direct-calls`).

A WARNING-ONLY check (llm-tracking-learnings.md, insight 3): the command prints file, line and
pattern and exits 0, so it never blocks a commit; ``--strict`` exits 1 when it finds anything.

What is a direct call
    A call of a generation/embedding method on an OpenAI, Anthropic, Google (google-genai,
    google-generativeai, Vertex AI), Groq, Mistral or Cohere client, or of OpenAI's module-level
    API (``openai.ChatCompletion.create``, ``openai.chat.completions.create``). Python is read
    with ``ast``; JavaScript/TypeScript with a coarser pattern match (see javascript.py).

Receiver origin, not method names
    ``client.messages.create`` is Anthropic only if ``client`` came from ``anthropic.Anthropic()``
    (Twilio's client has the same method). The checker follows each receiver back, within the
    file: imports (aliases included), assignments in the function, the module or the class
    (``self.client = OpenAI()`` in ``__init__``), ``with ... as client``, wrappers around a
    constructor (``instructor.from_openai(OpenAI())``), objects derived from a client
    (``model.start_chat().send_message``), parameters annotated with a client class and functions
    whose return annotation is one (``def _client(self) -> OpenAI``); ``.with_raw_response`` /
    ``.with_streaming_response`` are seen through. Built bundles (minified JS, ``dist/``) are skipped.
    A receiver bound to anything else (a Twilio client, a MagicMock, a local class named OpenAI)
    is not a provider client. A receiver it cannot follow (an unannotated parameter) counts
    only for unmistakable paths (``.chat.completions.create``, ``.messages.create``,
    ``.generate_content``...) in a file that imports that provider's SDK.
    ``litellm.completion`` & co. are never reported: the gateway's callbacks see them.

Through the gateway (not reported)
    * The client is built with a base URL (``base_url=``/``api_base=``/``server_url=``, or
      ``http_options={"base_url": ...}``) that is the gateway: a literal on localhost/127.0.0.1,
      one naming litellm/gateway/proxy, or the ``llmOps.gateway.baseURL`` of ./backlog.config.json
      or ``$BACKLOG_GATEWAY_URL``; or an expression naming litellm/gateway/proxy
      (``os.environ["LITELLM_PROXY_URL"]``, ``settings.GATEWAY_URL``). An expression that names
      nothing either way (``cfg.base_url``) is given the benefit of the doubt. A literal URL of
      any other host (DeepInfra, OpenRouter, Azure...) or an expression naming a provider
      (``DEEPINFRA_URL``) is NOT the gateway: that traffic is what the gateway never sees.
    * Env-configured: the same file sets the SDK's base-URL variable (``OPENAI_BASE_URL``,
      ``OPENAI_API_BASE``, ``ANTHROPIC_BASE_URL``, ``GROQ_BASE_URL``, ``CO_API_URL``) through
      ``os.environ[...] =`` or ``os.environ.setdefault``, to a value that is not a provider's, or
      sets ``openai.base_url`` / ``openai.api_base`` for the module-level API. The environment
      the checker runs in says nothing about where the code runs, so it is not consulted.
    * A client whose origin the checker cannot see (a parameter) while every client of that
      provider built in the checked files goes through the gateway.
    * A ``# backlog-ops: gateway`` (or ``# backlog-ops: allow-direct``) comment on the call's or
      the client construction's line.

Wrapped in track_llm_call (not reported)
    The call sits inside ``with``/``async with ...track_llm_call(...)`` or inside a function
    decorated with ``@...track_llm_call(...)`` (any receiver: ``self.tracker.track_llm_call``).

Modules: providers (what a provider call looks like), allowlist (what lets one pass), files
(which files are read), scopes and python_scan (the Python check), javascript (the JS/TS check),
check (running them over files), finding (the result). Standard library only: the pre-commit
hook installs nothing else it needs.
"""

from backlog_ops.checks.direct_calls.check import check_paths, check_source
from backlog_ops.checks.direct_calls.finding import Finding

__all__ = ["Finding", "check_paths", "check_source"]
