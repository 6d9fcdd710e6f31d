"""Text from elsewhere, made safe to print: the one escaping rule for terminals and logs.

A CA's problem ``detail``, an order's fields, a probed certificate's subject or SANs, a DNS
answer, a stranger's HTTP request line: any of them may carry escape sequences that clear a
line and forge another ("certificate for example.com ..."), or a newline that starts a fake
log line, or bidirectional controls that reorder what a person reads. :func:`printable`
writes every such character as a visible escape — ``\\x1b``, ``\\n``, ``\\u202e`` — and
leaves all other text as it is. It is applied where text leaves the program (the CLI's log
handler, its error line and its reports) and where a library error's message is built from
what a server said.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable", "printable_lines"]

#: Characters that are invisible, move the cursor or reorder text: C0 controls and DEL,
#: C1 controls (0x9b is CSI on many terminals), line/paragraph separators, and the Unicode
#: format characters (bidi embeddings, overrides and isolates, zero-width marks).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


_TABLE = {code: _escape(chr(code)) for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    """``text`` with every control, format and separator character escaped (``\\x1b``)."""
    escaped = text.translate(_TABLE)
    if escaped.isascii():
        return escaped
    return "".join(
        _escape(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in escaped
    )


def printable_lines(text: str) -> str:
    """:func:`printable` for each line of a message acmelite made multi-line on purpose (one
    line per failed name, say); the newlines between them stay, every other one is escaped
    where the server's text entered the message."""
    return "\n".join(printable(line) for line in text.split("\n"))
