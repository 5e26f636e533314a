"""Test doubles: they look like provider calls and are not."""

from unittest.mock import AsyncMock, MagicMock

import openai  # noqa: F401  (for spec=)


class OpenAI:
    """A fake with the SDK's shape."""

    class _Completions:
        def create(self, **kwargs):
            return {"choices": [{"message": {"content": "fake"}}]}

    class _Chat:
        def __init__(self) -> None:
            self.completions = OpenAI._Completions()

    def __init__(self) -> None:
        self.chat = OpenAI._Chat()


def fake_client():
    client = MagicMock()
    client.chat.completions.create.return_value = {"choices": []}
    client.chat.completions.create(model="x", messages=[])
    return client


async def fake_async():
    client = AsyncMock()
    await client.chat.completions.create(model="x", messages=[])


def local_fake():
    return OpenAI().chat.completions.create(model="x", messages=[])


DOC = "call openai.chat.completions.create(...) through the gateway"  # a string, not a call
# client.messages.create(...)  <- a comment, not a call
