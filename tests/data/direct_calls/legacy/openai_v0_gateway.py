"""The same old API, pointed at the gateway."""

import openai

openai.api_base = "http://localhost:4000"
openai.api_key = "sk-gateway"


def complete(prompt: str) -> str:
    r = openai.ChatCompletion.create(model="cheap", messages=[{"role": "user", "content": prompt}])
    return r["choices"][0]["message"]["content"]
