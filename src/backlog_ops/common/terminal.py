"""Text from stored data made safe to print to a terminal.

Ledger rows, tags and file names come from callers we do not control: a value holding ESC
sequences would recolour, retitle or rewrite the user's terminal when `spend` prints it. Every
face that prints such text passes it through `printable` (control characters become visible
escapes such as `\\x1b`) or `one_line` (for one-line messages).
"""

from __future__ import annotations

__all__ = ["printable", "one_line"]

# C0 and C1 controls, DEL, and the Unicode characters that reorder or break lines on screen
# (bidirectional overrides and isolates, line and paragraph separators).
_UNSAFE = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F),
           *range(0x2066, 0x206A), 0x2028, 0x2029]
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}


def printable(text: object) -> str:
    """`text` with every control character replaced by a visible escape (`\\x1b`, `\\u202e`)."""
    return str(text).translate(_ESCAPES)


def one_line(text: object) -> str:
    """`text` on one line: runs of whitespace (newlines, tabs) become one space, then `printable`."""
    return printable(" ".join(str(text).split()))
