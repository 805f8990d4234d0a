"""Junk that is not English: random characters of a large script, and mojibake.

Two scores, each in [0, 1] and 0.0 on clean text of any language:

- `rare_char_ratio`: the share of a text's Han and Hangul letters that are *not* in the common
  character sets its writers use daily, taken from the national standard character sets Python's
  codecs carry: GB 2312 level 1 (3,755 most frequent simplified hanzi), Big5's frequently used
  hanzi (5,401, A440-C67E), JIS X 0208 level 1 (2,965 kanji) and KS X 1001's 2,350 Hangul
  syllables. Real Chinese, Japanese and Korean prose stays almost entirely inside them (names and
  classical text a few percent out); uniformly random CJK Unified Ideographs (20,992) or Hangul
  syllables (11,172) fall outside three times out of four, whatever their line breaks.
- `mojibake_ratio`: ftfy's badness (`ftfy/badness.py`: counts character sequences typical of
  text decoded with the wrong codec, e.g. UTF-8 read as Latin-1 or cp1252) per non-ASCII
  character, on a bounded sample of the *raw* text (before NFKC, which folds some of the
  tell-tale characters). Per non-ASCII character, so a mostly-ASCII document whose few non-ASCII
  words are all mojibake is caught as surely as a Chinese page read as Latin-1.

`junk_reason` turns them into the reject reasons `junk:random_chars` and `junk:mojibake`.

A third score feeds the statistical outlier filter instead of a fixed rule, since its normal range
depends on the alphabet: `char_entropy`, the conditional entropy H(next | current) in bits of the
letters (case-folded, every other character a space) of the first `ENTROPY_CHARS` characters:
H(bigrams) - H(unigrams), plug-in estimates. Language is predictable from one letter to the next
(English, Russian, Arabic, Hindi prose: 1.5-3.0 bits on this machine's translations), random
letters are not (3.4-3.8 bits for random Latin or Cyrillic words); on a fixed sample length the
estimation bias is the same for every document of a script, and thresholds are per script group.
"""
from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

import regex

#: characters (after folding non-letters to single spaces) that char_entropy reads
ENTROPY_CHARS = 600
#: characters of a text the scores read (start and middle, like llmdata.langid.sample)
SAMPLE_CHARS = 4000
#: at least this many Han/Hangul letters before rare_char_ratio can reject a text
MIN_CJK_LETTERS = 30
#: rare_char_ratio above this rejects a text as `junk:random_chars`
MAX_RARE_CHAR_RATIO = 0.3
#: mojibake_ratio at or above this (with at least MIN_BADNESS bad sequences) rejects as `junk:mojibake`
MAX_MOJIBAKE_RATIO = 0.05
MIN_BADNESS = 5

_CJK = regex.compile(r"[\p{Han}\p{Hangul}]")
_NOT_LETTERS = regex.compile(r"[^\p{L}\p{M}]+")
_LATIN1_TELLS = regex.compile(r"[\u00c0-\u00ff\u0080-\u009f\u2018-\u201e\u2020-\u2122\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc]")


def _decode_range(codec: str, firsts: range, seconds: list[int]) -> set[str]:
    out = set()
    for b1 in firsts:
        for b2 in seconds:
            try:
                out.add(bytes((b1, b2)).decode(codec))
            except UnicodeDecodeError:
                pass
    return out


@lru_cache(maxsize=1)
def common_cjk() -> frozenset[str]:
    """The common Han and Hangul characters of GB 2312 L1, Big5 frequent, JIS X 0208 L1, KS X 1001."""
    hi = list(range(0xA1, 0xFF))
    chars = _decode_range("gb2312", range(0xB0, 0xD8), hi)  # level 1: rows 16-55
    chars |= _decode_range("big5", range(0xA4, 0xC7), list(range(0x40, 0x7F)) + hi)
    chars |= _decode_range("euc_jp", range(0xB0, 0xD0), hi)  # level 1 kanji: rows 16-47
    chars |= _decode_range("euc_kr", range(0xB0, 0xC9), hi)  # Hangul syllables: rows 16-40
    return frozenset(c for c in chars if _CJK.match(c))


def _sample(text: str, n: int = SAMPLE_CHARS) -> str:
    if len(text) <= n:
        return text
    mid = len(text) // 2
    return text[: n // 2] + "\n" + text[mid:mid + n - n // 2]


def rare_char_ratio(text: str) -> tuple[float, int]:
    """(share of Han+Hangul letters outside `common_cjk`, number of Han+Hangul letters) in a sample."""
    if text.isascii():
        return 0.0, 0
    letters = _CJK.findall(_sample(text))
    if not letters:
        return 0.0, 0
    common = common_cjk()
    return sum(1 for c in letters if c not in common) / len(letters), len(letters)


def mojibake_score(raw: str) -> tuple[float, int]:
    """(ftfy badness per non-ASCII character, badness) of a sample of the raw text; (0.0, 0) for
    ASCII or text without any character mojibake is made of (the common case: one regex search)."""
    if raw.isascii():
        return 0.0, 0
    s = _sample(raw)
    if not _LATIN1_TELLS.search(s):
        return 0.0, 0
    from ftfy.badness import badness

    bad = badness(s)
    non_ascii = len(s) - len(s.encode("ascii", "ignore"))
    return bad / max(non_ascii, 1), bad


def char_entropy(text: str) -> float:
    """Conditional entropy (bits) of the next letter given the current one, over the first
    ENTROPY_CHARS characters of the text with letters case-folded and every run of non-letters
    one space; 0.0 for fewer than 50 such characters."""
    folded = _NOT_LETTERS.sub(" ", text[: ENTROPY_CHARS * 3].lower()).strip()[:ENTROPY_CHARS]
    if len(folded) < 50:
        return 0.0
    n = len(folded) - 1

    def entropy(counts: Counter) -> float:
        return -sum(c / n * math.log2(c / n) for c in counts.values())

    return max(entropy(Counter(zip(folded, folded[1:]))) - entropy(Counter(folded[:-1])), 0.0)


def junk_scores(raw: str, text: str) -> dict[str, float]:
    """The junk rules' scores of a document: `rare_char_ratio` and `cjk_letters` of the normalized
    text, `mojibake_ratio` and `mojibake_badness` of the raw text (module docstring).
    `char_entropy` is one of llmdata.features' document features."""
    rare, n_cjk = rare_char_ratio(text)
    moji, bad = mojibake_score(raw)
    return {"rare_char_ratio": rare, "cjk_letters": float(n_cjk), "mojibake_ratio": moji, "mojibake_badness": float(bad)}


def junk_reason(scores: dict[str, float]) -> str | None:
    """`junk:mojibake`, `junk:random_chars` or None, from `junk_scores`' values."""
    if scores["mojibake_ratio"] >= MAX_MOJIBAKE_RATIO and scores["mojibake_badness"] >= MIN_BADNESS:
        return "junk:mojibake"
    if scores["cjk_letters"] >= MIN_CJK_LETTERS and scores["rare_char_ratio"] > MAX_RARE_CHAR_RATIO:
        return "junk:random_chars"
    return None
