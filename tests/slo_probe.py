"""A test-only LiteLLM callback: appends what LiteLLM itself logged for each call to a JSONL file.

It lets tests check that our tags reach LiteLLM's own spend logs (standard_logging_object
["request_tags"]), independently of our ledger.
"""

import json
import os

from litellm.integrations.custom_logger import CustomLogger


class SloProbe(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._dump(kwargs, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._dump(kwargs, "failure")

    def _dump(self, kwargs, status):
        slo = kwargs.get("standard_logging_object") or {}
        row = {
            "status": status,
            "call_id": slo.get("litellm_call_id"),
            "request_tags": slo.get("request_tags"),
            "spend_logs_metadata": (slo.get("metadata") or {}).get("spend_logs_metadata"),
            "error": slo.get("error_information"),
            "response_cost": slo.get("response_cost"),
            "model_group": slo.get("model_group"),
        }
        with open(os.environ["SLO_PROBE_FILE"], "a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")


probe = SloProbe()
