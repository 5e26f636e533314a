"""Structured output through instructor: still a direct OpenAI client underneath."""

import instructor
from openai import OpenAI
from pydantic import BaseModel

client = instructor.from_openai(OpenAI())


class Ticket(BaseModel):
    title: str
    priority: int


def extract(text: str) -> Ticket:
    return client.chat.completions.create(model="gpt-4o-mini", response_model=Ticket, messages=[{"role": "user", "content": text}])  # expect: direct
