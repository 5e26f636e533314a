"""Clients that go through the LiteLLM gateway, and one fallback that does not."""

import os

import anthropic
from openai import AsyncOpenAI, OpenAI

from app.config import settings

gateway = OpenAI(base_url=os.environ["LITELLM_PROXY_URL"], api_key=os.environ["LITELLM_KEY"])
claude = anthropic.Anthropic(base_url=settings.GATEWAY_URL, api_key=settings.GATEWAY_KEY)
local = OpenAI(base_url="http://127.0.0.1:4000/v1", api_key="sk-local")
configured = OpenAI(base_url=settings.llm_base_url)


def answer(question: str) -> str:
    r = gateway.chat.completions.create(model="balanced", messages=[{"role": "user", "content": question}])
    return r.choices[0].message.content


def review(diff: str) -> str:
    msg = claude.messages.create(model="frontier", max_tokens=2000, messages=[{"role": "user", "content": diff}])
    return msg.content[0].text


def summarize(text: str) -> str:
    return local.responses.create(model="cheap", input=text).output_text


def configured_call(text: str) -> str:
    return configured.chat.completions.create(model="cheap", messages=[{"role": "user", "content": text}])


class Fallbacks:
    def __init__(self) -> None:
        self.fallback = AsyncOpenAI()

    async def ask(self, prompt: str) -> str:
        r = await self.fallback.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])  # expect: direct
        return r.choices[0].message.content
