"""Per-document features, computed once and shared by the outlier filter and the fixed rules.

Scores first, decisions second (as in dolma and data-juicer): the features are stored with each
document, so thresholds can be re-tuned later without recomputing them.
"""
from __future__ import annotations

import re
import string
import zlib
from collections import Counter

import regex

from llmdata.junk import char_entropy
from llmdata.scripts import words as script_words

_WORD = regex.compile(r"\w+")
_WORD_ASCII = re.compile(r"\w+")  # same tokens as _WORD on ASCII text, 1.5x faster
_ASCII_RUNS = re.compile(r"[\x00-\x7f]+")
_NOT_ALPHA = regex.compile(r"[^\p{L}\p{M}]+")
_NOT_DIGIT = regex.compile(r"[^\p{Nd}]+")
_NOT_UPPER = regex.compile(r"[^\p{Lu}]+")
_HAS_ALPHA = regex.compile(r"\p{L}")
_HAS_ASCII_ALPHA = re.compile(r"[A-Za-z]")  # \p{L} on ASCII, in the stdlib engine (3x faster per call)
_ASCII_LETTERS = string.ascii_letters.encode()
_ASCII_DIGITS = string.digits.encode()
_ASCII_UPPER = string.ascii_uppercase.encode()
_ASCII_SPACE = bytes(c for c in range(128) if chr(c).isspace())

#: The features the statistical outlier filter knows, and the scale each is judged on:
#: (log scale?, offset). Lengths and counts are roughly log-normal (log of x + 1); skewed ratios
#: with most mass near zero are judged as log(x + 0.01), which spreads the crowded low end and
#: keeps the rare high values far out; symmetric ratios stay linear.
FEATURES: dict[str, tuple[bool, float]] = {
    "n_chars": (True, 1.0),
    "n_words": (True, 1.0),
    "n_lines": (True, 1.0),
    "mean_word_len": (True, 1.0),
    "mean_line_len": (True, 1.0),
    "alpha_ratio": (False, 0.01),
    "digit_ratio": (True, 0.01),
    "symbol_ratio": (True, 0.01),
    "upper_ratio": (True, 0.01),
    "whitespace_ratio": (False, 0.01),
    "non_ascii_ratio": (True, 0.01),
    "unique_word_ratio": (True, 0.01),
    "msttr": (True, 0.01),
    "dup_line_frac": (True, 0.01),
    "compression_ratio": (False, 0.01),
    "char_entropy": (False, 0.01),  # llmdata.junk.char_entropy, bits
}


#: Words per segment of the mean segmental type-token ratio (`msttr`), and the most segments read
MSTTR_SEGMENT = 50
MSTTR_MAX_SEGMENTS = 40

#: The smallest sample a ratio is measured on: below it the value is mostly the size of the sample
#: (zlib needs history to find repeats: real English prose compresses to 0.87 of its size at 100
#: bytes, 0.58 at 500, 0.41 at 4,000; a mean of three word lengths, or the share of distinct words
#: in "A ⊆ B ∧ B ⊆ A ⇒ A = B", says little about the text), so
#: the feature is left out of the document's scores and the outlier filter does not judge it there.
#: Measured on the demo corpus's prose by bench/length_features.py (bench/RESULTS.md "Good documents
#: of every length").
MIN_COMPRESSION_BYTES = 500  # UTF-8 bytes, for compression_ratio
MIN_WORDS = 20               # words, for mean_word_len and msttr
MIN_VISIBLE_FOR_RATIO = 100  # non-whitespace characters, for symbol_ratio


#: The word list Thai is segmented with for the features (llmdata.scripts.thai_words): ICU's, whose
#: entries are single words. PyThaiNLP's default list also holds multi-word compounds, so a Thai text
#: whose vocabulary repeats one (a list of accessibility labels: สิ่งอำนวยความสะดวก, 18 code points,
#: 15 times) had a mean word length far above the same messages' English (6.52 against the Thai
#: median 4.43; in English 5.28 against 5.22). The web rules keep PyThaiNLP's list, with which
#: FineWeb-2 fit their Thai thresholds.
FEATURE_THAI_DICTIONARY = "icu"


def feature_scale(name: str, log_override: bool | None = None) -> tuple[bool, float]:
    """(judged on a log scale?, offset added before the log) for a feature."""
    use_log, offset = FEATURES.get(name, (False, 1.0))
    return (use_log if log_override is None else log_override), offset


def words(text: str) -> list[str]:
    """Runs of word characters (letters with their combining marks, digits, underscore): the
    fixed web rules' words (llmdata/quality.py). The features use `llmdata.scripts.words`."""
    return (_WORD_ASCII if text.isascii() else _WORD).findall(text)


def char_classes(text: str) -> tuple[int, int, int, int, int]:
    """Letters (with combining marks), decimal digits, uppercase letters, whitespace, non-ASCII.

    The ASCII characters, most of technical text, are counted with bytes.translate, many times
    faster than a Unicode class in a regex; only the non-ASCII remainder goes through `regex`.
    """
    data = text.encode("ascii", "ignore")
    n = len(data)
    counts = [
        n - len(data.translate(None, _ASCII_LETTERS)),
        n - len(data.translate(None, _ASCII_DIGITS)),
        n - len(data.translate(None, _ASCII_UPPER)),
        n - len(data.translate(None, _ASCII_SPACE)),
        len(text) - n,
    ]
    if n < len(text):
        rest = _ASCII_RUNS.sub("", text)
        for i, extra in enumerate(char_classes_unicode(rest)[:4]):
            counts[i] += extra
    return counts[0], counts[1], counts[2], counts[3], counts[4]


def char_classes_unicode(text: str) -> tuple[int, int, int, int, int]:
    """The same counts with Unicode classes only: the reference for the fast path."""
    n = len(text)
    spaces = n - len("".join(text.split()))
    non_ascii = n - len(text.encode("ascii", "ignore"))
    return len(_NOT_ALPHA.sub("", text)), len(_NOT_DIGIT.sub("", text)), len(_NOT_UPPER.sub("", text)), spaces, non_ascii


def msttr(tokens: list[str], segment: int = MSTTR_SEGMENT, max_segments: int = MSTTR_MAX_SEGMENTS) -> float:
    """Mean segmental type-token ratio: the mean of (distinct tokens / `segment`) over segments of
    `segment` consecutive tokens (Johnson 1944, "Studies in language behavior"; with 50-token
    segments, the length-independent lexical diversity measure reviewed by McCarthy and Jarvis
    2010, "MTLD, vocd-D, and HD-D").

    Unlike the plain type-token ratio (distinct / all), which falls as a text grows (Heaps' law:
    a 40,000-character tutorial scores as low as a spam page of a few hundred words), it does not
    depend on the length. The segments cover the whole text: ceil(n / `segment`) of them, at most
    `max_segments` (a sample, as the junk scores read one: the cost stays bounded for a book),
    their starts spread evenly from the first token to the last segment's, so where n is not a
    multiple of `segment` neighbours overlap by less than a segment. (Johnson's cut into
    consecutive segments drops the remainder, up to `segment` - 1 tokens: a 91-word list of
    keyboard layouts was judged by its first 50 words alone, the most repetitive part.) For n a
    multiple of `segment`, up to `max_segments` segments, the two are the same. A text of at most
    `segment` tokens gets its plain ratio; 0.0 without tokens.
    """
    n = len(tokens)
    if n <= segment:
        return len(set(tokens)) / n if n else 0.0
    count = min(-(-n // segment), max_segments)
    starts = [k * (n - segment) // (count - 1) for k in range(count)] if count > 1 else [0]
    return sum(len(set(tokens[i:i + segment])) for i in starts) / (count * segment)


def document_features(text: str) -> dict[str, float]:
    """The feature vector of one document: every value finite, even for the empty string.

    `compression_ratio`, `mean_word_len`, `msttr` and `symbol_ratio` are left out when the text is
    below their smallest sample (`MIN_COMPRESSION_BYTES`, `MIN_WORDS`, `MIN_VISIBLE_FOR_RATIO`).
    """
    n_chars = len(text)
    # one word per Han/kana character, ICU's words for Thai, a number with its decimal point one word
    toks = script_words(text, thai_dictionary=FEATURE_THAI_DICTIONARY, whole_numbers=True)
    n_words = len(toks)
    lines = text.split("\n")
    nonblank = [ln.strip() for ln in lines if ln.strip()]
    alpha, digits, upper, spaces, non_ascii = char_classes(text)
    visible = max(n_chars - spaces, 1)
    symbols = visible - alpha - digits
    encoded = text.encode("utf-8")
    counts = Counter(nonblank)
    dup_lines = sum(c for c in counts.values() if c > 1) - sum(1 for c in counts.values() if c > 1)
    folded = list(map(str.lower, toks))
    # the ratios a small sample cannot measure are not computed, and left out (None below)
    words_enough, visible_enough = n_words >= MIN_WORDS, visible >= MIN_VISIBLE_FOR_RATIO
    out = {
        "n_chars": float(n_chars),
        "n_words": float(n_words),
        "n_lines": float(len(nonblank)),
        "mean_word_len": len("".join(toks)) / n_words if words_enough else None,  # the sum of the word lengths
        "mean_line_len": (sum(len(ln) for ln in nonblank) / len(nonblank)) if nonblank else 0.0,
        "alpha_ratio": alpha / visible,
        "digit_ratio": digits / visible,
        "symbol_ratio": max(symbols, 0) / visible if visible_enough else None,
        "upper_ratio": (upper / alpha) if alpha else 0.0,
        "whitespace_ratio": spaces / max(n_chars, 1),
        "non_ascii_ratio": non_ascii / max(n_chars, 1),
        "unique_word_ratio": (len(set(folded)) / n_words) if n_words else 0.0,
        "msttr": msttr(folded) if words_enough else None,
        "dup_line_frac": (dup_lines / len(nonblank)) if nonblank else 0.0,
        # Level 1 finds the repetition that matters here at 60% of level 6's cost.
        "compression_ratio": (len(zlib.compress(encoded, 1)) / len(encoded)
                              if len(encoded) >= MIN_COMPRESSION_BYTES else None),
        "char_entropy": char_entropy(text),  # bits; random letters score high (llmdata/junk.py)
    }
    return {name: value for name, value in out.items() if value is not None}


def has_alpha(word: str) -> bool:
    """Whether the word holds a letter (\\p{L})."""
    return (_HAS_ASCII_ALPHA if word.isascii() else _HAS_ALPHA).search(word) is not None
