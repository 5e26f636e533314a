"""Helpers that receive their client from the caller."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anthropic import Anthropic
    from openai import OpenAI


def ask(client, prompt: str) -> str:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])  # expect: direct
    return r.choices[0].message.content


def ask_claude(client: "Anthropic", prompt: str) -> str:
    return client.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": prompt}])  # expect: direct


def first_choice(response: dict) -> str:
    return response["choices"][0]["message"]["content"]


def send_reminder(sms, to: str) -> None:
    sms.messages.send(to=to, body="reminder")


def files(client: "OpenAI", path: str):
    with open(path, "rb") as fh:
        return client.files.create(file=fh, purpose="batch")
