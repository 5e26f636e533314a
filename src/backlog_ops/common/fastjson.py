"""json.loads / json.dumps for the hook path, without importing `re`.

The standard `json` package imports `re` (json.decoder's number and whitespace patterns), which
costs a fresh interpreter ~6 ms: more than half of `python -c pass`, on every Claude Code hook.
CPython's C accelerator `_json`, which `json` itself uses, needs no `re`: this module drives it
directly. Anything unusual (a parse error, another interpreter without `_json`) falls back to the
standard `json`, so results and error messages are exactly the standard library's.
"""

from __future__ import annotations

__all__ = ["dumps", "loads"]

try:
    import _json

    class _Context:
        # The attributes json.decoder.JSONDecoder gives the C scanner, with the defaults.
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float  # 'NaN', 'Infinity', '-Infinity', as json.loads reads them
        memo: dict = {}

    _scan = _json.make_scanner(_Context())
    _encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
except Exception:  # noqa: BLE001 - no C accelerator: the standard json does it all
    _scan = _encode = None

_WHITESPACE = " \t\n\r"


def loads(data: str | bytes) -> object:
    """json.loads(data)."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if _scan is not None:
        stripped = text.strip(_WHITESPACE)
        try:
            value, end = _scan(stripped, 0)
            if end == len(stripped):
                return value
        except Exception:  # noqa: BLE001 - let the standard json raise its own error
            pass
        finally:
            _Context.memo.clear()
    import json

    return json.loads(text)


def dumps(value: object) -> str:
    """json.dumps(value, separators=(",", ":")) for plain data (dicts with str keys, lists, scalars)."""
    if _encode is not None:
        try:
            return "".join(_encode(value, 0))
        except Exception:  # noqa: BLE001
            pass
    import json

    return json.dumps(value, separators=(",", ":"))
