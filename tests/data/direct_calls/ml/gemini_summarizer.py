"""Gemini through both Google SDKs; the new SDK's client goes through the gateway."""

import os

import google.generativeai as genai
from google import genai as google_genai
from google.genai import types

GATEWAY_URL = os.environ.get("LLM_GATEWAY_URL", "http://litellm:4000")

genai.configure(api_key=os.environ["GEMINI_API_KEY"])
model = genai.GenerativeModel("gemini-1.5-flash")
proxied = google_genai.Client(http_options=types.HttpOptions(base_url=GATEWAY_URL))
direct_client = google_genai.Client(api_key=os.environ["GEMINI_API_KEY"])


def summarize(text: str) -> str:
    return model.generate_content(f"Summarize:\n{text}").text  # expect: direct


def converse(turns: list[str]) -> str:
    chat = model.start_chat()
    reply = None
    for turn in turns:
        reply = chat.send_message(turn)  # expect: direct
    return reply.text if reply else ""


def via_gateway(text: str) -> str:
    return proxied.models.generate_content(model="gemini-2.0-flash", contents=text).text


async def direct_async(text: str) -> str:
    r = await direct_client.aio.models.generate_content(model="gemini-2.0-flash", contents=text)  # expect: direct
    return r.text


def embed(text: str) -> list[float]:
    return genai.embed_content(model="models/text-embedding-004", content=text)["embedding"]  # expect: direct
