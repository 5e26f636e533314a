"""The design document's case: CrewAI through LiteLLM, Gemma 3 through a raw OpenAI client."""

import logging
import os

from openai import OpenAI

from app.services.llm_usage_tracker import LLMUsageTracker

log = logging.getLogger(__name__)

DEEPINFRA_BASE = "https://api.deepinfra.com/v1/openai"


class MultiModelService:
    def __init__(self) -> None:
        self.openai_client = OpenAI(base_url=DEEPINFRA_BASE, api_key=os.environ["DEEPINFRA_API_KEY"])
        self.llm_usage_tracker = LLMUsageTracker()

    async def chat(self, task_type: str, messages: list[dict], model_config: dict) -> str:
        async with self.llm_usage_tracker.track_llm_call(
            provider="deepinfra", model=model_config["model_name"], feature_context=task_type
        ) as usage_log:
            completion = self.openai_client.chat.completions.create(model=model_config["model_name"], messages=messages)
            usage_log.input_tokens = completion.usage.prompt_tokens
            usage_log.output_tokens = completion.usage.completion_tokens
        return completion.choices[0].message.content

    def quick_classify(self, text: str) -> str:
        # Added later, without the tracker: the hole the check is for.
        completion = self.openai_client.chat.completions.create(  # expect: direct
            model="google/gemma-3-27b-it",
            messages=[{"role": "user", "content": f"Classify: {text}"}],
        )
        return completion.choices[0].message.content

    def list_models(self) -> list[str]:
        return [m.id for m in self.openai_client.models.list()]
