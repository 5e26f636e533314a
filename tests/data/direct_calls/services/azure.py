"""Azure OpenAI: a provider endpoint, not the gateway."""

import os

from openai import AzureOpenAI

azure = AzureOpenAI(azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"], api_version="2024-10-21")


def complete(prompt: str) -> str:
    completions = azure.chat.completions
    r = completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])  # expect: direct
    return r.choices[0].message.content
