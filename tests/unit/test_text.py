"""The one escaping rule for text from elsewhere (acmelite.text.printable)."""

from __future__ import annotations

import pytest

from acmelite.text import printable, printable_lines


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ü and 漢字 stay", "plain text, ü and 漢字 stay"),
        ("\x1b[2Jclear", "\\x1b[2Jclear"),
        ("line\nforged", "line\\x0aforged"),
        ("\r\t\x00\x7f", "\\x0d\\x09\\x00\\x7f"),
        ("\x9b31m C1 CSI", "\\x9b31m C1 CSI"),
        ("abc\u202edef\u2066\u200b", "abc\\u202edef\\u2066\\u200b"),
        ("para\u2029sep\u2028", "para\\u2029sep\\u2028"),
        ("\U000e0041 tag", "\\U000e0041 tag"),
    ],
)
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown, "escaped text is left as it is"


def test_printable_lines_keeps_the_lines_acmelite_made() -> None:
    message = "validation failed:\n  a.test: \x1b[2Jbad\n  b.test: ok"
    assert printable_lines(message) == "validation failed:\n  a.test: \\x1b[2Jbad\n  b.test: ok"
