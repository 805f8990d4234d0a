"""Text as the reports show it: what a user's data holds, never acted on by a terminal or viewer.

Prompts, answers and samples in report.md / report.html come from user files and models; a raw
escape sequence (ESC, BEL), a bidirectional override or a zero-width character would colour a
terminal, reorder a line or hide text. They are written as escapes instead.
"""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls; zero-width space, LRM/RLM, bidi embeddings,
# overrides and isolates, word joiner and invisible operators, BOM. ZWJ/ZWNJ (U+200D/U+200C)
# stay: they are part of the spelling of Persian, Indic and emoji text.
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_LINE_BREAKS = {"\n": "\\n", "\t": "\\t"}


def shown(text: str, one_line: bool = False) -> str:
    """`text` with each hidden character written as `\\xNN` or `\\uNNNN`; with `one_line`, newlines
    and tabs as `\\n` and `\\t` too (table cells, quoted prompts)."""
    out = _HIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)
    if one_line:
        out = out.replace("\r", "\\r")
        for ch, esc in _LINE_BREAKS.items():
            out = out.replace(ch, esc)
    return out


def table_cell(value: str) -> str:
    """A markdown table cell: one line, hidden characters escaped, `|` escaped."""
    return shown(value, one_line=True).replace("|", "\\|")
