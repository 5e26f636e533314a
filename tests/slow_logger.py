"""A test-only LiteLLM callback whose success event takes SLOW_LOGGER_SECONDS (default 10).

Listed before the spend ledger, it holds back LiteLLM's logging of each call (callbacks of one
call run in turn), keeping open the moment between a response reaching its client and the
ledger's own callback: what a kill -9 in that moment would lose.
"""

import asyncio
import os

from litellm.integrations.custom_logger import CustomLogger


class SlowLogger(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        await asyncio.sleep(float(os.environ.get("SLOW_LOGGER_SECONDS", "10")))


slow = SlowLogger()
