"""Groq, Mistral and Cohere straight from their SDKs."""

import os

import cohere
from groq import Groq
from mistralai import Mistral

groq_client = Groq(api_key=os.environ["GROQ_API_KEY"])
mistral = Mistral(api_key=os.environ["MISTRAL_API_KEY"])
co = cohere.ClientV2(api_key=os.environ["CO_API_KEY"])
co_gateway = cohere.ClientV2(base_url="http://litellm.internal:4000/cohere", api_key="sk-gw")


def fast_answer(q: str) -> str:
    r = groq_client.chat.completions.create(model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": q}])  # expect: direct
    return r.choices[0].message.content


def mistral_answer(q: str) -> str:
    r = mistral.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": q}])  # expect: direct
    return r.choices[0].message.content


def rerank(query: str, docs: list[str]) -> list[int]:
    r = co.rerank(model="rerank-v3.5", query=query, documents=docs, top_n=3)  # expect: direct
    return [x.index for x in r.results]


def embed_via_gateway(texts: list[str]):
    return co_gateway.embed(texts=texts, model="embed-english-v3.0", input_type="search_document", embedding_types=["float"])


def transcribe(path: str) -> str:
    with open(path, "rb") as fh:
        return Groq().audio.transcriptions.create(file=fh, model="whisper-large-v3").text  # expect: direct
