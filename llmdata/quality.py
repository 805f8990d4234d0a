"""Fixed quality rules from the literature: Gopher quality and repetition, C4 lines, FineWeb.

These are web-text rules. On manuals, docstrings or code they remove most of a corpus, so each
rule set is opt-in per corpus type; the statistical outlier filter (outliers.py) is the default.
Each rule set computes its scores, then decides; a dropped document carries the rule that
dropped it (`gopher_quality:min_words`) and all scores, like datatrove's filters.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

import regex
from pydantic import BaseModel, ConfigDict, Field

from llmdata.features import has_alpha, words

Scores = dict[str, float]
Verdict = tuple[Optional[str], Scores]

_BULLETS = ("\u2022", "\u2023", "\u25b6", "\u25cf", "\u25e6", "\u25aa", "\u25ab", "\u2013", "-", "*")
_ELLIPSES = ("...", "\u2026")
_TERMINAL = (".", "!", "?", '"', "'", "\u201d", "\u2019")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_PUNCT_CHARS = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u2018\u2019\u201c\u201d"
_SENTENCE_END = regex.compile(r"[.!?]+(?=\s|$)")
_PARAGRAPHS = regex.compile(r"\n\s*\n")


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False


class GopherQuality(_Rules):
    """Gopher (Rae et al. 2021) document quality rules, thresholds as in the paper."""

    min_words: int = Field(50, ge=0)
    max_words: int = Field(100_000, ge=1)
    min_mean_word_len: float = Field(3.0, ge=0)
    max_mean_word_len: float = Field(10.0, gt=0)
    max_symbol_word_ratio: float = Field(0.1, ge=0)
    max_bullet_lines_ratio: float = Field(0.9, ge=0, le=1)
    max_ellipsis_lines_ratio: float = Field(0.3, ge=0, le=1)
    min_alpha_words_ratio: float = Field(0.8, ge=0, le=1)
    min_stop_words: int = Field(2, ge=0)
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])


class GopherRepetition(_Rules):
    """Gopher repetition rules: duplicated lines and paragraphs, frequent and repeated n-grams."""

    max_dup_line_frac: float = Field(0.3, ge=0, le=1)
    max_dup_para_frac: float = Field(0.3, ge=0, le=1)
    max_dup_line_char_frac: float = Field(0.2, ge=0, le=1)
    max_dup_para_char_frac: float = Field(0.2, ge=0, le=1)
    top_ngram_max_frac: dict[int, float] = Field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    dup_ngram_max_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )


class C4Rules(_Rules):
    """C4 (Raffel et al. 2020) line filters; they rewrite the text, then judge what is left."""

    min_words_per_line: int = Field(3, ge=0)
    require_terminal_punct: bool = True
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = True
    max_word_len: int = Field(1000, ge=1)
    drop_lorem_ipsum: bool = True
    drop_curly_bracket: bool = True
    min_sentences: int = Field(5, ge=0)


class FineWebRules(_Rules):
    """FineWeb (Penedo et al. 2024) rules on line punctuation, short lines, duplicates, newlines."""

    min_line_punct_ratio: float = Field(0.12, ge=0, le=1)
    max_short_line_ratio: float = Field(0.67, ge=0, le=1)
    short_line_chars: int = Field(30, ge=1)
    max_dup_line_char_ratio: float = Field(0.01, ge=0, le=1)
    max_newline_word_ratio: float = Field(0.3, ge=0)


class QualityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gopher_quality: GopherQuality = Field(default_factory=GopherQuality)
    gopher_repetition: GopherRepetition = Field(default_factory=GopherRepetition)
    c4: C4Rules = Field(default_factory=C4Rules)
    fineweb: FineWebRules = Field(default_factory=FineWebRules)


def gopher_quality(text: str, opts: GopherQuality) -> Verdict:
    """Words are whitespace-separated, as in the Gopher paper. (datatrove counts spaCy tokens,
    so each bracket or comma is a word without letters; on code-heavy text that rejects nearly
    every document for the alphabetic-words rule.)"""
    toks = text.split()
    n = len(toks)
    lines = [ln for ln in text.split("\n") if ln.strip()]
    n_lines = max(len(lines), 1)
    symbols = text.count("#") + sum(text.count(e) for e in _ELLIPSES)
    stops = set(opts.stop_words)
    scores = {
        "gq_words": float(n),
        "gq_mean_word_len": (sum(len(w) for w in toks) / n) if n else 0.0,
        "gq_symbol_word_ratio": symbols / n if n else float(symbols > 0),
        "gq_bullet_lines_ratio": sum(ln.lstrip().startswith(_BULLETS) for ln in lines) / n_lines,
        "gq_ellipsis_lines_ratio": sum(ln.rstrip().endswith(_ELLIPSES) for ln in lines) / n_lines,
        "gq_alpha_words_ratio": (sum(has_alpha(w) for w in toks) / n) if n else 0.0,
        "gq_stop_words": float(sum(1 for w in toks if w.lower().strip(_PUNCT_CHARS) in stops)),
    }
    checks = [
        ("min_words", scores["gq_words"] < opts.min_words),
        ("max_words", scores["gq_words"] > opts.max_words),
        ("min_mean_word_len", scores["gq_mean_word_len"] < opts.min_mean_word_len),
        ("max_mean_word_len", scores["gq_mean_word_len"] > opts.max_mean_word_len),
        ("max_symbol_word_ratio", scores["gq_symbol_word_ratio"] > opts.max_symbol_word_ratio),
        ("max_bullet_lines_ratio", scores["gq_bullet_lines_ratio"] > opts.max_bullet_lines_ratio),
        ("max_ellipsis_lines_ratio", scores["gq_ellipsis_lines_ratio"] > opts.max_ellipsis_lines_ratio),
        ("min_alpha_words_ratio", scores["gq_alpha_words_ratio"] < opts.min_alpha_words_ratio),
        ("min_stop_words", scores["gq_stop_words"] < opts.min_stop_words),
    ]
    return _first_failure("gopher_quality", checks), scores


def _duplicate_stats(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and how many characters those repeats hold."""
    seen: set[str] = set()
    dup_count = dup_chars = 0
    for item in items:
        if item in seen:
            dup_count += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_count, dup_chars


def top_ngram_char_frac(toks: list[str], n: int, total_chars: int) -> float:
    """Share of word characters covered by the single most frequent n-gram (Gopher)."""
    if len(toks) < n or total_chars == 0:
        return 0.0
    grams = Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
    gram, count = grams.most_common(1)[0]
    if count <= 1:
        return 0.0
    return min(1.0, sum(len(w) for w in gram) * count / total_chars)


def dup_ngram_char_frac(toks: list[str], n: int, total_chars: int) -> float:
    """Share of word characters inside n-grams that already occurred (non-overlapping, Gopher)."""
    if len(toks) < n or total_chars == 0:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    dup_chars = 0
    i = 0
    while i <= len(toks) - n:
        gram = tuple(toks[i : i + n])
        if gram in seen:
            dup_chars += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return min(1.0, dup_chars / total_chars)


def gopher_repetition(text: str, opts: GopherRepetition) -> Verdict:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    paras = [p for p in _PARAGRAPHS.split(text.strip()) if p.strip()]
    n_chars = max(len(text), 1)
    dup_lines, dup_line_chars = _duplicate_stats(lines)
    dup_paras, dup_para_chars = _duplicate_stats(paras)
    toks = words(text)
    word_chars = sum(len(w) for w in toks)
    scores = {
        "gr_dup_line_frac": dup_lines / max(len(lines), 1),
        "gr_dup_para_frac": dup_paras / max(len(paras), 1),
        "gr_dup_line_char_frac": dup_line_chars / n_chars,
        "gr_dup_para_char_frac": dup_para_chars / n_chars,
    }
    checks = [
        ("max_dup_para_frac", scores["gr_dup_para_frac"] > opts.max_dup_para_frac),
        ("max_dup_para_char_frac", scores["gr_dup_para_char_frac"] > opts.max_dup_para_char_frac),
        ("max_dup_line_frac", scores["gr_dup_line_frac"] > opts.max_dup_line_frac),
        ("max_dup_line_char_frac", scores["gr_dup_line_char_frac"] > opts.max_dup_line_char_frac),
    ]
    for n, limit in sorted(opts.top_ngram_max_frac.items()):
        key = f"gr_top_{n}gram_frac"
        scores[key] = top_ngram_char_frac(toks, n, word_chars)
        checks.append((f"top_{n}gram", scores[key] > limit))
    for n, limit in sorted(opts.dup_ngram_max_frac.items()):
        key = f"gr_dup_{n}gram_frac"
        scores[key] = dup_ngram_char_frac(toks, n, word_chars)
        checks.append((f"dup_{n}gram", scores[key] > limit))
    return _first_failure("gopher_repetition", checks), scores


def c4_filter(text: str, opts: C4Rules) -> tuple[Optional[str], Scores, str]:
    """C4's line filters: returns (reason or None, scores, the text with bad lines removed)."""
    lower = text.lower()
    scores: Scores = {}
    if opts.drop_lorem_ipsum and "lorem ipsum" in lower:
        return "c4:lorem_ipsum", {"c4_lines_removed": 0.0}, text
    if opts.drop_curly_bracket and "{" in text:
        return "c4:curly_bracket", {"c4_lines_removed": 0.0}, text
    kept: list[str] = []
    removed = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            kept.append(line)
            continue
        line_lower = stripped.lower()
        toks = stripped.split()
        bad = (
            len(toks) < opts.min_words_per_line
            or (opts.require_terminal_punct and not stripped.endswith(_TERMINAL))
            or (opts.drop_javascript_lines and "javascript" in line_lower)
            or (opts.drop_policy_lines and any(p in line_lower for p in _POLICY))
            or any(len(t) > opts.max_word_len for t in toks)
        )
        if bad:
            removed += 1
        else:
            kept.append(line)
    new_text = "\n".join(kept).strip("\n")
    sentences = len(_SENTENCE_END.findall(new_text))
    scores = {"c4_lines_removed": float(removed), "c4_sentences": float(sentences)}
    if not new_text.strip():
        return "c4:no_lines_left", scores, new_text
    if sentences < opts.min_sentences:
        return "c4:min_sentences", scores, new_text
    return None, scores, new_text


def fineweb(text: str, opts: FineWebRules) -> Verdict:
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    n_lines = max(len(lines), 1)
    _, dup_chars = _duplicate_stats(lines)
    n_words = len(words(text))
    scores = {
        "fw_line_punct_ratio": sum(ln.endswith(_TERMINAL) for ln in lines) / n_lines,
        "fw_short_line_ratio": sum(len(ln) <= opts.short_line_chars for ln in lines) / n_lines,
        "fw_dup_line_char_ratio": dup_chars / max(len(text.replace("\n", "")), 1),
        "fw_newline_word_ratio": text.count("\n") / max(n_words, 1),
    }
    checks = [
        ("line_punct_ratio", scores["fw_line_punct_ratio"] < opts.min_line_punct_ratio),
        ("short_line_ratio", scores["fw_short_line_ratio"] > opts.max_short_line_ratio),
        ("dup_line_char_ratio", scores["fw_dup_line_char_ratio"] > opts.max_dup_line_char_ratio),
        ("newline_word_ratio", scores["fw_newline_word_ratio"] > opts.max_newline_word_ratio),
    ]
    return _first_failure("fineweb", checks), scores


def _first_failure(rule_set: str, checks: list[tuple[str, bool]]) -> Optional[str]:
    for name, failed in checks:
        if failed:
            return f"{rule_set}:{name}"
    return None


def apply_rules(text: str, opts: QualityOptions) -> tuple[Optional[str], Scores, str]:
    """Run the enabled rule sets in order (C4 first, since it rewrites the text).

    Returns (reason or None, all scores computed, text after C4's line removal).
    """
    scores: Scores = {}
    if opts.c4.enabled:
        reason, s, text = c4_filter(text, opts.c4)
        scores.update(s)
        if reason:
            return reason, scores, text
    for enabled, fn, rule_opts in (
        (opts.gopher_repetition.enabled, gopher_repetition, opts.gopher_repetition),
        (opts.gopher_quality.enabled, gopher_quality, opts.gopher_quality),
        (opts.fineweb.enabled, fineweb, opts.fineweb),
    ):
        if enabled:
            reason, s = fn(text, rule_opts)
            scores.update(s)
            if reason:
                return reason, scores, text
    return None, scores, text
