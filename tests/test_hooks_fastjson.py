"""backlog_ops.common.fastjson: the hook path's JSON without `re`, equal to the standard json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backlog_ops.common import fastjson

SAMPLES = [
    {"session_id": "4542a6ff", "tool_input": {"ticket_id": "FEAT-1", "n": [1, 2.5, -3e-7, True, False, None]}},
    {"prompt": "CALL x {\"a\": \"\\u00e9\\n\\t\\\"q\\\"\"}", "emoji": "\U0001f600", "empty": {}, "list": []},
    [], {}, "text", 12, 1.5, None, {"nested": [[[[{"deep": "yes"}]]]]},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_round_trips_like_the_standard_json(value) -> None:
    text = json.dumps(value)
    assert fastjson.loads(text) == json.loads(text)
    assert fastjson.loads(("  \n" + text + "\n ").encode()) == value
    assert json.loads(fastjson.dumps(value)) == value
    assert fastjson.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("bad", ["{oops", "[1, 2", '{"a": 1} trailing', "", "nan"])
def test_errors_are_the_standard_jsons(bad) -> None:
    with pytest.raises(json.JSONDecodeError):
        fastjson.loads(bad)


def test_importing_it_does_not_import_re() -> None:
    # -S: no site, no .pth files (the editable install's finder imports re by itself).
    code = (
        f"import sys; ns = {{}}; exec(compile(open({fastjson.__file__!r}).read(), 'fastjson', 'exec'), ns); "
        "assert ns['loads']('{\"a\": [1, 2.5]}') == {'a': [1, 2.5]}; print('re' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "False", r.stderr
