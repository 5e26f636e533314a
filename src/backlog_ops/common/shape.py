"""The one message for a settings, keys or context file whose top level is not an object.

backlog.config.json, virtual_keys.yaml and context files each hold one object ({...}) at the
top level; a JSON array there (or a string, a number) is refused with this same sentence
wherever the file is read. Imports nothing: the hooks read context files.
"""

__all__ = ["not_an_object"]

_KINDS = ((bool, "true/false"), (list, "an array [...]"), (str, "a string"), (int, "a number"), (float, "a number"))


def not_an_object(path, data, hint: str = "") -> str | None:
    """None when `data` is a dict; else '<path>: the top level must be an object {...}, not an array [...]; <hint>'."""
    if isinstance(data, dict):
        return None
    kind = "nothing (null)" if data is None else next((k for t, k in _KINDS if isinstance(data, t)), type(data).__name__)
    return f"{path}: the top level must be an object {{...}}, not {kind}" + (f"; {hint}" if hint else "")
