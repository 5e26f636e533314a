"""openai<1.0 module-level API, still in an old batch job."""

import openai

openai.api_key = "sk-..."


def complete(prompt: str) -> str:
    r = openai.ChatCompletion.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": prompt}])  # expect: direct
    return r["choices"][0]["message"]["content"]


def embed(text: str):
    return openai.Embedding.create(model="text-embedding-ada-002", input=text)["data"][0]["embedding"]  # expect: direct
