"""Writing systems of a text: which scripts its letters are in, and which one leads.

Every rule, feature and shingle that has to treat scripts without spaces differently (Chinese,
Japanese, Thai, Lao, Khmer, Myanmar) asks this module, so the choice is made in one place.

Scripts are Unicode's Script property (UAX #24) as the `regex` module knows it, grouped as users
name them: Hiragana and Katakana are "kana", Hangul is "hangul", and the scripts of South and
South-East Asia keep their own names. Characters whose script is Common or Inherited (digits,
punctuation, spaces, combining marks) belong to no script and are not counted.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

import regex

#: script group -> the Unicode scripts it holds; the order is the order of the alternation below
SCRIPT_GROUPS: dict[str, tuple[str, ...]] = {
    "latin": ("Latin",),
    "han": ("Han",),
    "kana": ("Hiragana", "Katakana"),
    "hangul": ("Hangul",),
    "cyrillic": ("Cyrillic",),
    "greek": ("Greek",),
    "arabic": ("Arabic",),
    "hebrew": ("Hebrew",),
    "devanagari": ("Devanagari",),
    "bengali": ("Bengali",),
    "tamil": ("Tamil",),
    "thai": ("Thai",),
    "lao": ("Lao",),
    "khmer": ("Khmer",),
    "myanmar": ("Myanmar",),
    "georgian": ("Georgian",),
    "armenian": ("Armenian",),
    "ethiopic": ("Ethiopic",),
}

#: Scripts written without spaces between words: a whitespace or \w+ "word" there is a clause.
NO_SPACE_SCRIPTS: frozenset[str] = frozenset({"han", "kana", "thai", "lao", "khmer", "myanmar"})

_GROUP_NAMES = list(SCRIPT_GROUPS)
_RUNS = regex.compile("|".join(
    "(" + "".join(fr"\p{{Script={s}}}" for s in scripts).join("[]") + "+)" for scripts in SCRIPT_GROUPS.values()
) + r"|((?:(?![\p{Script=Common}\p{Script=Inherited}])\p{L})+)")  # letters of any other script
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def script_counts(text: str) -> Counter:
    """Letters per script group, e.g. ``Counter({"latin": 120, "han": 35})``.

    Letters of a script not in `SCRIPT_GROUPS` count as "other"; digits, punctuation, spaces and
    combining marks count nowhere. ASCII-only text is counted without a regex pass.
    """
    if text.isascii():
        n = sum(1 for c in text if c in _ASCII_LETTERS)
        return Counter({"latin": n}) if n else Counter()
    counts: Counter = Counter()
    for m in _RUNS.finditer(text):
        i = m.lastindex - 1
        counts[_GROUP_NAMES[i] if i < len(_GROUP_NAMES) else "other"] += m.end() - m.start()
    return counts


def dominant_script(text: str, counts: Optional[Counter] = None) -> str:
    """The script group with the most letters; "none" for a text without letters.

    Japanese text mixes Han and kana: a text whose letters include kana is "kana" (Japanese) as
    soon as kana make up a fifth of its Han+kana letters, so kanji-heavy Japanese is not taken
    for Chinese.
    """
    counts = script_counts(text) if counts is None else counts
    if not counts:
        return "none"
    kana, han = counts.get("kana", 0), counts.get("han", 0)
    best, n = counts.most_common(1)[0]
    if best == "han" and kana and kana * 5 >= han + kana:
        return "kana"
    return best


def spaceless_share(counts: Counter) -> float:
    """Share (0-1) of a text's letters that are in scripts written without spaces."""
    total = sum(counts.values())
    return sum(n for s, n in counts.items() if s in NO_SPACE_SCRIPTS) / total if total else 0.0
