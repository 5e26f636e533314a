"""CrewAI tools: most go through litellm (the gateway's callbacks see them), one does not."""

import litellm
from anthropic import Anthropic
from crewai.tools import tool
from litellm import acompletion, completion

from backlog_ops.capture.tracking import track_llm_call

client = Anthropic()


@tool("summarize")
def summarize(text: str) -> str:
    r = litellm.completion(model="cheap", messages=[{"role": "user", "content": text}])
    return r.choices[0].message.content


async def draft(text: str) -> str:
    r = await acompletion(model="balanced", messages=[{"role": "user", "content": text}])
    return r.choices[0].message.content


def plain(text: str) -> str:
    return completion(model="cheap", messages=[{"role": "user", "content": text}]).choices[0].message.content


def critique(text: str) -> str:
    msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=800, messages=[{"role": "user", "content": text}])  # expect: direct
    return msg.content[0].text


@track_llm_call(model="claude-haiku-4-5")
def tracked_critique(text: str):
    return client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=[{"role": "user", "content": text}])


def tracked_block(text: str) -> str:
    with track_llm_call(model="claude-haiku-4-5") as call:
        msg = call.record(client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=[]))
    return msg.content[0].text


def cost_estimate(text: str) -> int:
    return client.messages.count_tokens(model="claude-haiku-4-5", messages=[{"role": "user", "content": text}]).input_tokens
