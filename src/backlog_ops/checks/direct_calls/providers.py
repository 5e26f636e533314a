"""What the providers' Python SDKs look like: client classes, their generation calls, SDK modules."""

from __future__ import annotations

__all__ = ["CLIENT_CALLS", "CLIENT_CLASSES", "ENV_BASE_URLS", "MODULE_CALLS", "RESPONSE_WRAPPERS", "SDK_MODULES",
           "UNRESOLVED_CALLS", "URL_KEYWORDS", "sdk_provider"]

CLIENT_CLASSES = {
    **{f"openai.{c}": "openai" for c in ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI", "Client", "AsyncClient")},
    **{f"anthropic.{c}": "anthropic" for c in ("Anthropic", "AsyncAnthropic", "Client", "AsyncClient", "AnthropicBedrock",
                                                "AsyncAnthropicBedrock", "AnthropicVertex", "AsyncAnthropicVertex")},
    "google.genai.Client": "google",
    "google.genai.client.Client": "google",
    "google.generativeai.GenerativeModel": "google",
    "vertexai.generative_models.GenerativeModel": "google",
    "vertexai.preview.generative_models.GenerativeModel": "google",
    "groq.Groq": "groq",
    "groq.AsyncGroq": "groq",
    "mistralai.Mistral": "mistral",
    "mistralai.client.MistralClient": "mistral",
    "mistralai.async_client.MistralAsyncClient": "mistral",
    **{f"cohere.{c}": "cohere" for c in ("Client", "ClientV2", "AsyncClient", "AsyncClientV2")},
}

_OPENAI_STYLE = {
    "chat.completions.create", "chat.completions.parse", "chat.completions.stream", "beta.chat.completions.parse",
    "beta.chat.completions.stream", "completions.create", "responses.create", "responses.parse", "responses.stream",
    "embeddings.create", "images.generate", "audio.transcriptions.create", "audio.translations.create",
    "audio.speech.create",
}
# Method paths from a client, per provider.
CLIENT_CALLS = {
    "openai": _OPENAI_STYLE,
    "groq": {"chat.completions.create", "audio.transcriptions.create", "audio.translations.create"},
    "anthropic": {"messages.create", "messages.stream", "messages.parse", "beta.messages.create",
                  "beta.messages.stream", "beta.messages.parse", "completions.create"},
    "google": {"generate_content", "generate_content_async", "models.generate_content", "models.generate_content_stream",
               "aio.models.generate_content", "aio.models.generate_content_stream", "models.embed_content",
               "start_chat.send_message", "start_chat.send_message_async", "chats.create.send_message",
               "chats.create.send_message_stream", "aio.chats.create.send_message"},
    "mistral": {"chat.complete", "chat.complete_async", "chat.stream", "chat.stream_async", "fim.complete",
                "embeddings.create", "chat", "chat_stream", "embeddings"},
    "cohere": {"chat", "chat_stream", "generate", "embed", "rerank"},
}
MODULE_CALLS = {
    "openai.chat.completions.create": "openai", "openai.completions.create": "openai",
    "openai.responses.create": "openai", "openai.embeddings.create": "openai",
    "openai.ChatCompletion.create": "openai", "openai.ChatCompletion.acreate": "openai",
    "openai.Completion.create": "openai", "openai.Completion.acreate": "openai",
    "openai.Embedding.create": "openai", "openai.Embedding.acreate": "openai",
    "google.generativeai.generate_text": "google", "google.generativeai.chat": "google",
    "google.generativeai.embed_content": "google",
}
# For receivers the checker cannot follow: paths no other popular SDK uses.
UNRESOLVED_CALLS = {
    "openai": {"chat.completions.create", "chat.completions.parse", "beta.chat.completions.parse", "responses.create"},
    "groq": {"chat.completions.create"},
    "anthropic": {"messages.create", "messages.stream", "beta.messages.create"},
    "google": {"models.generate_content", "generate_content", "aio.models.generate_content", "models.generate_content_stream"},
    "mistral": {"chat.complete", "chat.complete_async", "chat.stream"},
}
SDK_MODULES = {"openai": "openai", "anthropic": "anthropic", "groq": "groq", "mistralai": "mistral", "cohere": "cohere",
               "google.genai": "google", "google.generativeai": "google", "vertexai": "google"}
# The environment variables that point an SDK at another base URL.
ENV_BASE_URLS = {"OPENAI_BASE_URL": "openai", "OPENAI_API_BASE": "openai", "ANTHROPIC_BASE_URL": "anthropic",
                 "GROQ_BASE_URL": "groq", "CO_API_URL": "cohere"}
# Constructor keywords (or dict keys, as in http_options={...}) that carry a base URL.
URL_KEYWORDS = {"base_url", "api_base", "server_url", "baseURL", "azure_endpoint", "api_endpoint"}
# .with_raw_response / .with_streaming_response are the same call, seen through a wrapper.
RESPONSE_WRAPPERS = {"with_raw_response", "with_streaming_response"}


def sdk_provider(fq: str) -> str | None:
    """The provider whose SDK the imported name `fq` belongs to ("openai.types.Foo" -> "openai")."""
    for module, provider in SDK_MODULES.items():
        if fq == module or fq.startswith(module + "."):
            return provider
    return None
