"""Env-configured gateway, pragmas, and streaming."""

import os

from anthropic import Anthropic, AsyncAnthropic
from openai import AsyncOpenAI, OpenAI

os.environ.setdefault("OPENAI_BASE_URL", "http://127.0.0.1:4000/v1")

client = OpenAI()
reviewer = Anthropic()  # backlog-ops: gateway  (ANTHROPIC_BASE_URL is set by the deployment)
batch = AsyncAnthropic()


def ask(q: str) -> str:
    return client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": q}]).choices[0].message.content


def review(diff: str) -> str:
    return reviewer.messages.create(model="frontier", max_tokens=1000, messages=[{"role": "user", "content": diff}]).content[0].text


async def stream_review(diff: str) -> str:
    parts = []
    async with batch.messages.stream(model="claude-sonnet-4-6", max_tokens=1000, messages=[]) as stream:  # expect: direct
        async for text in stream.text_stream:
            parts.append(text)
    return "".join(parts)


async def responses(q: str) -> str:
    async with AsyncOpenAI() as oai:
        r = await oai.responses.create(model="gpt-4o-mini", input=q)
    return r.output_text


def deliberate(q: str):
    return batch.messages.create(model="claude-opus-4-6", max_tokens=10, messages=[])  # backlog-ops: allow-direct
