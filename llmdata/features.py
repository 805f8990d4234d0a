"""Per-document features, computed once and shared by the outlier filter and the fixed rules.

Scores first, decisions second (as in dolma and data-juicer): the features are stored with each
document, so thresholds can be re-tuned later without recomputing them.
"""
from __future__ import annotations

import zlib
from collections import Counter

import regex

_WORD = regex.compile(r"\w+")
_ALPHA_RUN = regex.compile(r"[\p{L}\p{M}]+")
_DIGIT_RUN = regex.compile(r"\p{Nd}+")
_UPPER_RUN = regex.compile(r"\p{Lu}+")
_SPACE_RUN = regex.compile(r"\s+")
_NON_ASCII_RUN = regex.compile(r"[^\x00-\x7f]+")
_HAS_ALPHA = regex.compile(r"\p{L}")

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
    "dup_line_frac": (True, 0.01),
    "compression_ratio": (False, 0.01),
}


def feature_scale(name: str, log_override: "bool | None" = None) -> tuple[bool, float]:
    """(judged on a log scale?, offset added before the log) for a feature."""
    use_log, offset = FEATURES.get(name, (False, 1.0))
    return (use_log if log_override is None else log_override), offset


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _run_chars(pattern: regex.Pattern, text: str) -> int:
    return sum(len(m) for m in pattern.findall(text))


def document_features(text: str) -> dict[str, float]:
    """The feature vector of one document; every value is finite, even for the empty string."""
    n_chars = len(text)
    toks = words(text)
    n_words = len(toks)
    lines = text.split("\n")
    nonblank = [ln.strip() for ln in lines if ln.strip()]
    spaces = _run_chars(_SPACE_RUN, text)
    visible = max(n_chars - spaces, 1)
    alpha = _run_chars(_ALPHA_RUN, text)
    digits = _run_chars(_DIGIT_RUN, text)
    symbols = visible - alpha - digits
    encoded = text.encode("utf-8")
    counts = Counter(nonblank)
    dup_lines = sum(c for c in counts.values() if c > 1) - sum(1 for c in counts.values() if c > 1)
    return {
        "n_chars": float(n_chars),
        "n_words": float(n_words),
        "n_lines": float(len(nonblank)),
        "mean_word_len": (sum(len(w) for w in toks) / n_words) if n_words else 0.0,
        "mean_line_len": (sum(len(ln) for ln in nonblank) / len(nonblank)) if nonblank else 0.0,
        "alpha_ratio": alpha / visible,
        "digit_ratio": digits / visible,
        "symbol_ratio": max(symbols, 0) / visible,
        "upper_ratio": (_run_chars(_UPPER_RUN, text) / alpha) if alpha else 0.0,
        "whitespace_ratio": spaces / max(n_chars, 1),
        "non_ascii_ratio": _run_chars(_NON_ASCII_RUN, text) / max(n_chars, 1),
        "unique_word_ratio": (len(set(w.lower() for w in toks)) / n_words) if n_words else 0.0,
        "dup_line_frac": (dup_lines / len(nonblank)) if nonblank else 0.0,
        "compression_ratio": (len(zlib.compress(encoded, 6)) / len(encoded)) if encoded else 0.0,
    }


def has_alpha(word: str) -> bool:
    return _HAS_ALPHA.search(word) is not None
