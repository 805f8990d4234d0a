"""A document's writing system, from the Unicode blocks of its letters: the language grouping of
the tokenizer report when a record carries no `lang` field.

Groups: han (Chinese, and Japanese written mostly in kanji), kana (Japanese: kana make at least
a fifth of its CJK letters), hangul, thai, arabic, cyrillic, latin, other (any other letter), and
none (no letter at all). Ranges follow the Unicode block chart (Unicode 15); a letter outside
every listed block counts as other.
"""
from __future__ import annotations

import bisect

#: (first code point, last code point, group), sorted by first code point.
_BLOCKS = sorted([
    (0x0041, 0x005A, "latin"), (0x0061, 0x007A, "latin"), (0x00C0, 0x024F, "latin"),
    (0x1E00, 0x1EFF, "latin"), (0x2C60, 0x2C7F, "latin"), (0xA720, 0xA7FF, "latin"), (0xFF21, 0xFF3A, "latin"),
    (0xFF41, 0xFF5A, "latin"),
    (0x0400, 0x052F, "cyrillic"), (0x1C80, 0x1C8F, "cyrillic"), (0x2DE0, 0x2DFF, "cyrillic"), (0xA640, 0xA69F, "cyrillic"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x08A0, 0x08FF, "arabic"), (0xFB50, 0xFDFF, "arabic"),
    (0xFE70, 0xFEFF, "arabic"),
    (0x0E00, 0x0E7F, "thai"),
    (0x1100, 0x11FF, "hangul"), (0x3130, 0x318F, "hangul"), (0xA960, 0xA97F, "hangul"), (0xAC00, 0xD7FF, "hangul"),
    (0xFFA0, 0xFFDC, "hangul"),
    (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"), (0xFF66, 0xFF9F, "kana"), (0x1B000, 0x1B16F, "kana"),
    (0x3005, 0x3007, "han"), (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
    (0x20000, 0x3FFFF, "han"),
])
_STARTS = [b[0] for b in _BLOCKS]

GROUPS = ("han", "kana", "hangul", "thai", "arabic", "cyrillic", "latin", "other", "none")


def letter_group(ch: str) -> str | None:
    """The group of one character if it is a letter (str.isalpha: Unicode categories L*), else None."""
    if not ch.isalpha():
        return None
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and cp <= _BLOCKS[i][1]:
        return _BLOCKS[i][2]
    return "other"


def script_group(text: str) -> str:
    """The group with the most letters in `text` (ties: the first in GROUPS); Han and kana are
    counted together first, then split: kana when kana are at least 20% of those letters
    (Japanese prose is mostly kana; Chinese has none). "none" for a text without letters."""
    counts: dict[str, int] = {}
    for ch in text:
        g = letter_group(ch)
        if g is not None:
            counts[g] = counts.get(g, 0) + 1
    if not counts:
        return "none"
    han, kana = counts.pop("han", 0), counts.pop("kana", 0)
    if han + kana:
        counts["han"] = han + kana
    best = max(GROUPS, key=lambda g: (counts.get(g, 0), -GROUPS.index(g)))
    if best == "han" and kana * 5 >= han + kana:
        return "kana"
    return best
