"""Fixed quality rules from the literature: Gopher quality and repetition, C4 lines, FineWeb,
each judging a document in its own language.

These are web-text rules. On manuals, docstrings or code they remove most of a corpus, so each
rule set is opt-in per corpus type; the statistical outlier filter (outliers.py) is the default.
Each rule set computes its scores, then decides; a dropped document carries the rule that
dropped it (`gopher_quality:min_words`) and all scores, like datatrove's filters.

Languages (FineWeb-2's per-language adaptation, see `llmdata.web_languages`): each rule takes the
document's language (`lang=`, the record's `lang` field; else guessed from its dominant script),
splits words as that language needs (whitespace, or one word per Han/kana character and
PyThaiNLP for Thai), ends lines and sentences with that script's punctuation (。！？ ؟ । ...), uses
that language's stop words and FineWeb-2's re-derived thresholds. A rule that cannot judge a
language (no stop words for it, no terminal punctuation in its script, or not in the rule's
`languages`) skips the document and says why, instead of rejecting it.
"""
from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

import regex
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from llmdata.features import has_alpha
from llmdata.reasons import C4Check, FineWebCheck as FW, GopherQualityCheck as GQ, GopherRepetitionCheck as GR
from llmdata.reasons import NgramCheck, RuleSet, ngram_check, rule_reason
from llmdata.scripts import words
from llmdata.web_languages import SENTENCE_END, STOP_WORDS, Language, fineweb2_defaults, resolve

if TYPE_CHECKING:  # numpy is imported where it is used: llmdata imports nothing heavy at module top
    import numpy as np

Scores = dict[str, float]
Verdict = tuple[Optional[str], Scores]

_BULLETS = ("\u2022", "\u2023", "\u25b6", "\u25cf", "\u25e6", "\u25aa", "\u25ab", "\u2013", "-", "*")
_ELLIPSES = ("...", "\u2026")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_EDGE_PUNCT = regex.compile(r"^[\p{P}\p{S}]+|[\p{P}\p{S}]+$")
_ASCII_PUNCT = "".join(chr(c) for c in range(128) if regex.match(r"[\p{P}\p{S}]", chr(c)))
_ASCII_LETTER = re.compile(r"[A-Za-z]")  # has_alpha's \p{L} on ASCII words


def _bare(word: str) -> str:
    """A word lowercased without leading and trailing punctuation or symbols (for stop words)."""
    return word.lower().strip(_ASCII_PUNCT) if word.isascii() else _EDGE_PUNCT.sub("", word.lower())
_PARAGRAPHS = regex.compile(r"\n\s*\n")
_CODE = regex.compile(r"[a-z]{2,3}")
_RULE_KEYS = frozenset({"enabled", "languages", "overrides"})


class _Rules(BaseModel):
    """Options shared by every rule set.

    languages: the ISO 639-1 codes the rule judges; None = every language it supports. A document
        in another language passes this rule untouched (and is counted as skipped).
    overrides: per-language field values, e.g. ``{"zh": {"min_words": 100}}``. Precedence:
        overrides > FineWeb-2's values for the language (`web_languages.fineweb2_defaults`) >
        this section's fields. So the section's fields are the values for English and for
        languages without built-in values; to change a built-in value, override it per language.
        (Not "fields set in the section win": a section reaches Beam workers as a full dump, where
        every field looks set.)
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = Field(False, description="run this rule set")
    languages: Optional[list[str]] = Field(
        None, description="ISO 639-1 codes this rule set judges; null: every language it supports")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-language field values, e.g. {zh: {min_words: 100}}; these win over "
        "FineWeb-2's built-in values")
    _cache: dict = PrivateAttr(default_factory=dict)

    #: the rule set's name in reasons and notes; FineWeb-2's defaults are looked up under it
    RULE: ClassVar[str] = ""

    @model_validator(mode="after")
    def _check_languages(self):
        for code in [*(self.languages or []), *self.overrides]:
            if not _CODE.fullmatch(code):
                raise ValueError(f"language {code!r}: expected a lowercase ISO 639 code such as 'zh'")
        for code, fields in self.overrides.items():
            bad = sorted(set(fields) & _RULE_KEYS)
            if bad:
                raise ValueError(f"overrides.{code}: {', '.join(bad)} cannot be set per language")
            self._for(code)  # validates the merged values (unknown field, out of range)
        return self

    def _for(self, code: str):
        """This rule's options for language `code`: section fields < FineWeb-2's < overrides."""
        if code not in self._cache:
            values = self.model_dump(exclude=_RULE_KEYS)
            values.update(fineweb2_defaults(code).get(self.RULE, {}))
            values.update(self.overrides.get(code, {}))
            self._cache[code] = type(self).model_validate({**values, "enabled": self.enabled})
        return self._cache[code]

    def unsupported(self, language: Language) -> Optional[str]:
        """Why this rule cannot judge `language` (one line, e.g. "no stop words for 'th'"), or None."""
        if self.languages is not None and language.code not in self.languages:
            return f"'{language.code or 'unknown'}' not in its languages"
        return None

    def for_language(self, language: Language):
        """(options for `language`, None) or (None, the one-line reason the rule skips it)."""
        why = self.unsupported(language)
        return (None, why) if why else (self._for(language.code), None)


class GopherQuality(_Rules):
    """Gopher (Rae et al. 2021) document quality rules, thresholds as in the paper.

    stop_words: None = the built-in list of the document's language (`web_languages.STOP_WORDS`);
    a list given here is used for every language (per language: `overrides.<lang>.stop_words`).
    """

    RULE: ClassVar[str] = RuleSet.GOPHER_QUALITY
    min_words: int = Field(
        50, ge=0, description="fewer words fails (words: whitespace-separated, or llmdata.scripts.words in languages "
        "written without spaces)")
    max_words: int = Field(100_000, ge=1, description="more words fails")
    min_mean_word_len: float = Field(3.0, ge=0, description="a shorter mean word length, in characters, fails")
    max_mean_word_len: float = Field(10.0, gt=0, description="a longer mean word length, in characters, fails")
    max_symbol_word_ratio: float = Field(0.1, ge=0, description="more '#' and ellipses per word fails")
    max_bullet_lines_ratio: float = Field(
        0.9, ge=0, le=1, description="a larger share of lines starting with a bullet fails")
    max_ellipsis_lines_ratio: float = Field(
        0.3, ge=0, le=1, description="a larger share of lines ending with an ellipsis fails")
    min_alpha_words_ratio: float = Field(0.8, ge=0, le=1, description="a smaller share of words with a letter fails")
    min_stop_words: int = Field(
        2, ge=0, description="fewer stop words (the, and, of... in the document's language) fails")
    stop_words: Optional[list[str]] = Field(
        None, description="stop words for every language; null: the built-in list of the document's language")

    def unsupported(self, language: Language) -> Optional[str]:
        why = super().unsupported(language)
        if why or self.min_stop_words == 0 or self.stop_words is not None:
            return why
        if "stop_words" in self.overrides.get(language.code, {}) or language.code in STOP_WORDS:
            return None
        return f"no stop words for '{language.code or 'unknown'}'"

    def stops(self, code: str) -> frozenset[str]:
        """The stop words used for language `code` (lowercase)."""
        words_ = self.stop_words if self.stop_words is not None else STOP_WORDS.get(code, ())
        return frozenset(w.lower() for w in words_)


class GopherRepetition(_Rules):
    """Gopher repetition rules: duplicated lines and paragraphs, frequent and repeated n-grams."""

    RULE: ClassVar[str] = RuleSet.GOPHER_REPETITION
    max_dup_line_frac: float = Field(
        0.3, ge=0, le=1, description="a larger share of lines that repeat an earlier line fails")
    max_dup_para_frac: float = Field(
        0.3, ge=0, le=1, description="a larger share of paragraphs that repeat an earlier paragraph fails")
    max_dup_line_char_frac: float = Field(
        0.2, ge=0, le=1, description="a larger share of characters in repeated lines fails")
    max_dup_para_char_frac: float = Field(
        0.2, ge=0, le=1, description="a larger share of characters in repeated paragraphs fails")
    top_ngram_max_frac: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16}, description="per n (words): the most frequent n-gram "
        "covering a larger share of word characters fails")
    dup_ngram_max_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="per n (words): a larger share of word characters inside repeated n-grams fails")


class C4Rules(_Rules):
    """C4 (Raffel et al. 2020) line filters; they rewrite the text, then judge what is left."""

    RULE: ClassVar[str] = RuleSet.C4
    min_words_per_line: int = Field(3, ge=0, description="a line with fewer words is removed")
    require_terminal_punct: bool = Field(
        True, description="a line not ending in its script's terminal punctuation (. ! ? 。) is removed")
    drop_javascript_lines: bool = Field(True, description="a line mentioning javascript is removed")
    drop_policy_lines: bool = Field(True, description="a line about cookies, terms of use or privacy policy is removed")
    max_word_len: int = Field(1000, ge=1, description="a line with a longer word, in characters, is removed")
    drop_lorem_ipsum: bool = Field(True, description="a document containing 'lorem ipsum' fails")
    drop_curly_bracket: bool = Field(
        True, description="a document containing '{' fails (C4's code filter; rejects code)")
    min_sentences: int = Field(5, ge=0, description="fewer sentences left after line removal fails")

    def unsupported(self, language: Language) -> Optional[str]:
        why = super().unsupported(language)
        if why is None and not language.terminal and (self.require_terminal_punct or self.min_sentences):
            why = f"no terminal punctuation in '{language.code or language.script}' text"
        return why


class FineWebRules(_Rules):
    """FineWeb (Penedo et al. 2024) rules on line punctuation, short lines, duplicates, newlines.

    In a script that writes no terminal punctuation (Thai, Lao) the line punctuation check is not
    made (FineWeb-2 sets its threshold to 0 for Thai); the other checks are.
    """

    RULE: ClassVar[str] = RuleSet.FINEWEB
    min_line_punct_ratio: float = Field(
        0.12, ge=0, le=1, description="a smaller share of lines ending in terminal punctuation fails")
    max_short_line_ratio: float = Field(
        0.67, ge=0, le=1, description="a larger share of short lines (up to short_line_chars) fails")
    short_line_chars: int = Field(30, ge=1, description="a line of at most this many characters is short")
    max_dup_line_char_ratio: float = Field(
        0.01, ge=0, le=1, description="a larger share of characters in repeated lines fails")
    max_newline_word_ratio: float = Field(0.3, ge=0, description="more newlines per word fails")


def _tokens(text: str, language: Language) -> list[str]:
    """Gopher's words: whitespace-separated, or `scripts.words` for a language without spaces."""
    return words(text) if language.spaceless else text.split()


def gopher_quality(text: str, opts: GopherQuality, *, lang: Optional[str] = None) -> Verdict:
    """Gopher's quality rules on `text` in language `lang` (None: guessed from the script).

    Words are whitespace-separated, as in the Gopher paper, except in languages written without
    spaces, where they are `llmdata.scripts.words` (one per Han/kana character, PyThaiNLP words
    for Thai). (datatrove counts spaCy tokens, so each bracket or comma is a word without
    letters; on code-heavy text that rejects nearly every document for the alphabetic-words
    rule.) A language without stop words passes unjudged: returns (None, {}).
    """
    language = resolve(text, lang)
    rule, _ = opts.for_language(language)
    return (None, {}) if rule is None else _gopher_quality(text, rule, language)


def _alpha_words(toks: list[str], ascii_text: bool) -> int:
    """How many words hold a letter (`has_alpha`); an ASCII text's words in one C-level pass."""
    if ascii_text:
        return len(list(filter(None, map(_ASCII_LETTER.search, toks))))
    return sum(map(has_alpha, toks))


def _stop_words(toks: list[str], stops: frozenset[str], ascii_text: bool) -> int:
    """How many words are stop words once `_bare`; an ASCII text's words in one C-level pass."""
    if ascii_text:
        return sum(map(stops.__contains__, map(str.strip, map(str.lower, toks), itertools.repeat(_ASCII_PUNCT))))
    return sum(_bare(w) in stops for w in toks)


def _gopher_quality(text: str, opts: GopherQuality, language: Language) -> Verdict:
    toks = _tokens(text, language)
    n = len(toks)
    lines = [ln for ln in text.split("\n") if ln.strip()]
    n_lines = max(len(lines), 1)
    symbols = text.count("#") + sum(text.count(e) for e in _ELLIPSES)
    stops = opts.stops(language.code)
    scores = {
        "gq_words": float(n),
        "gq_mean_word_len": (sum(map(len, toks)) / n) if n else 0.0,
        "gq_symbol_word_ratio": symbols / n if n else float(symbols > 0),
        "gq_bullet_lines_ratio": sum(ln.lstrip().startswith(_BULLETS) for ln in lines) / n_lines,
        "gq_ellipsis_lines_ratio": sum(ln.rstrip().endswith(_ELLIPSES) for ln in lines) / n_lines,
        "gq_alpha_words_ratio": (_alpha_words(toks, text.isascii()) / n) if n else 0.0,
        "gq_stop_words": float(_stop_words(toks, stops, text.isascii())),
    }
    checks = [
        (GQ.MIN_WORDS, scores["gq_words"] < opts.min_words),
        (GQ.MAX_WORDS, scores["gq_words"] > opts.max_words),
        (GQ.MIN_MEAN_WORD_LEN, scores["gq_mean_word_len"] < opts.min_mean_word_len),
        (GQ.MAX_MEAN_WORD_LEN, scores["gq_mean_word_len"] > opts.max_mean_word_len),
        (GQ.MAX_SYMBOL_WORD_RATIO, scores["gq_symbol_word_ratio"] > opts.max_symbol_word_ratio),
        (GQ.MAX_BULLET_LINES_RATIO, scores["gq_bullet_lines_ratio"] > opts.max_bullet_lines_ratio),
        (GQ.MAX_ELLIPSIS_LINES_RATIO, scores["gq_ellipsis_lines_ratio"] > opts.max_ellipsis_lines_ratio),
        (GQ.MIN_ALPHA_WORDS_RATIO, scores["gq_alpha_words_ratio"] < opts.min_alpha_words_ratio),
        (GQ.MIN_STOP_WORDS, scores["gq_stop_words"] < opts.min_stop_words),
    ]
    return _first_failure(RuleSet.GOPHER_QUALITY, checks), scores


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


class NgramIds:
    """Exact integer ids of a word list's n-grams, built once for every n a document is judged at.

    ids(1) numbers the distinct words; ids(n)[i] is the dense rank of the pair (ids(n-1)[i],
    ids(1)[i+n-1]), so two positions get the same id exactly when their n-grams are equal (no
    hashing, no collisions). `first(n)[i]` is the first position of the n-gram at i. Used by
    `top_ngram_char_frac` and `dup_ngram_char_frac`, whose results equal the tuple-based definitions
    (tested against them).
    """

    def __init__(self, toks: list[str]):
        import numpy as np

        index: dict[str, int] = {}
        self.size = len(toks)
        self._ids = {1: np.array([index.setdefault(t, len(index)) for t in toks], dtype=np.int64)}
        self._first: dict[int, "np.ndarray"] = {}
        self.chars = [0, *itertools.accumulate(map(len, toks))]  # chars[j] = characters of toks[:j]

    def ids(self, n: int) -> "np.ndarray":
        """[size - n + 1] int64 ids of the n-grams toks[i:i+n] (n <= size)."""
        import numpy as np

        k = max(self._ids)
        while k < n:
            prev, words_ = self._ids[k], self._ids[1]
            _, self._ids[k + 1] = np.unique(prev[:-1] * (int(words_.max()) + 1) + words_[k:], return_inverse=True)
            k += 1
        return self._ids[n]

    def first(self, n: int) -> "np.ndarray":
        """[size - n + 1] the first position of each position's n-gram."""
        import numpy as np

        if n not in self._first:
            g = self.ids(n)
            _, first_of_id = np.unique(g, return_index=True)
            self._first[n] = first_of_id[g]
        return self._first[n]


def top_ngram_char_frac(toks: list[str], n: int, total_chars: int, ngrams: Optional[NgramIds] = None) -> float:
    """Share of word characters covered by the single most frequent n-gram (Gopher): its
    characters times its count over `total_chars`; ties go to the n-gram that occurs first (as
    `Counter.most_common`). `ngrams`: the document's `NgramIds`, when several n are judged."""
    if len(toks) < n or total_chars == 0:
        return 0.0
    import numpy as np

    ngrams = ngrams or NgramIds(toks)
    counts = np.bincount(ngrams.ids(n))
    count = int(counts.max())
    if count <= 1:
        return 0.0
    first = ngrams.first(n)
    at = int(first[counts[ngrams.ids(n)] == count].min())  # the earliest position of a most frequent n-gram
    return min(1.0, (ngrams.chars[at + n] - ngrams.chars[at]) * count / total_chars)


def dup_ngram_char_frac(toks: list[str], n: int, total_chars: int, ngrams: Optional[NgramIds] = None) -> float:
    """Share of word characters inside n-grams that already occurred (non-overlapping, Gopher).

    The walk of Rae et al. 2021 (appendix A; datatrove's `find_all_duplicate`): from i = 0, an
    n-gram already seen counts its characters and the walk jumps to i + n, otherwise it is marked
    seen and the walk moves to i + 1. Only positions whose n-gram also occurs earlier can count,
    so the walk visits just those (a few percent of a document): such an n-gram was seen when its
    first occurrence was not jumped over, or when another earlier occurrence was visited. Same
    result as the position-by-position walk (tested), several times faster."""
    if len(toks) < n or total_chars == 0:
        return 0.0
    import numpy as np

    ngrams = ngrams or NgramIds(toks)
    first = ngrams.first(n)
    repeats = np.flatnonzero(first != np.arange(len(first)))
    seen_again: set[int] = set()  # first positions of n-grams seen at a later occurrence
    jumps: list[int] = []  # positions the walk jumped from: c + 1 .. c + n - 1 were not visited
    dup_chars = 0
    i = 0
    for c, g in zip(repeats.tolist(), first[repeats].tolist()):
        if c < i:  # jumped over
            continue
        j = bisect.bisect_right(jumps, g) - 1  # the last jump from at or before g
        if j < 0 or g >= jumps[j] + n or g in seen_again:  # the first occurrence was visited, or another one
            dup_chars += ngrams.chars[c + n] - ngrams.chars[c]
            jumps.append(c)
            i = c + n
        else:
            seen_again.add(g)
            i = c + 1
    return min(1.0, dup_chars / total_chars)


def gopher_repetition(text: str, opts: GopherRepetition, *, lang: Optional[str] = None) -> Verdict:
    """Gopher's repetition rules on `text` in language `lang` (None: guessed from the script).

    N-grams are over `llmdata.scripts.words` (characters for Chinese and Japanese, PyThaiNLP
    words for Thai), with FineWeb-2's per-language limits unless the config sets them.
    """
    language = resolve(text, lang)
    rule, _ = opts.for_language(language)
    return (None, {}) if rule is None else _gopher_repetition(text, rule, language)


def _gopher_repetition(text: str, opts: GopherRepetition, language: Language) -> Verdict:
    """(`language` only chose `opts`: n-grams are over `scripts.words` in every language.)"""
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
        (GR.MAX_DUP_PARA_FRAC, scores["gr_dup_para_frac"] > opts.max_dup_para_frac),
        (GR.MAX_DUP_PARA_CHAR_FRAC, scores["gr_dup_para_char_frac"] > opts.max_dup_para_char_frac),
        (GR.MAX_DUP_LINE_FRAC, scores["gr_dup_line_frac"] > opts.max_dup_line_frac),
        (GR.MAX_DUP_LINE_CHAR_FRAC, scores["gr_dup_line_char_frac"] > opts.max_dup_line_char_frac),
    ]
    ngrams = NgramIds(toks)
    for n, limit in sorted(opts.top_ngram_max_frac.items()):
        key = f"gr_top_{n}gram_frac"
        scores[key] = top_ngram_char_frac(toks, n, word_chars, ngrams)
        checks.append((ngram_check(NgramCheck.TOP, n), scores[key] > limit))
    for n, limit in sorted(opts.dup_ngram_max_frac.items()):
        key = f"gr_dup_{n}gram_frac"
        scores[key] = dup_ngram_char_frac(toks, n, word_chars, ngrams)
        checks.append((ngram_check(NgramCheck.DUP, n), scores[key] > limit))
    return _first_failure(RuleSet.GOPHER_REPETITION, checks), scores


def c4_filter(text: str, opts: C4Rules, *, lang: Optional[str] = None) -> tuple[Optional[str], Scores, str]:
    """C4's line filters: returns (reason or None, scores, the text with bad lines removed).

    A line needs `min_words_per_line` words (split as the language needs) and must end with its
    script's terminal punctuation (。！？ in Chinese and Japanese, ؟ in Arabic, । in Hindi...);
    sentences are counted with the same marks. A script without terminal punctuation (Thai)
    passes unjudged and unchanged: returns (None, {}, text).
    """
    language = resolve(text, lang)
    rule, _ = opts.for_language(language)
    return (None, {}, text) if rule is None else _c4_filter(text, rule, language)


def _c4_filter(text: str, opts: C4Rules, language: Language) -> tuple[Optional[str], Scores, str]:
    lower = text.lower()
    if opts.drop_lorem_ipsum and "lorem ipsum" in lower:
        return rule_reason(RuleSet.C4, C4Check.LOREM_IPSUM), {"c4_lines_removed": 0.0}, text
    if opts.drop_curly_bracket and "{" in text:
        return rule_reason(RuleSet.C4, C4Check.CURLY_BRACKET), {"c4_lines_removed": 0.0}, text
    kept: list[str] = []
    removed = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            kept.append(line)
            continue
        line_lower = stripped.lower()
        toks = _tokens(stripped, language)
        bad = (
            len(toks) < opts.min_words_per_line
            or (opts.require_terminal_punct and not stripped.endswith(language.terminal))
            or (opts.drop_javascript_lines and "javascript" in line_lower)
            or (opts.drop_policy_lines and any(p in line_lower for p in _POLICY))
            or any(len(t) > opts.max_word_len for t in toks)
        )
        if bad:
            removed += 1
        else:
            kept.append(line)
    new_text = "\n".join(kept).strip("\n")
    sentences = len(SENTENCE_END.findall(new_text))
    scores = {"c4_lines_removed": float(removed), "c4_sentences": float(sentences)}
    if not new_text.strip():
        return rule_reason(RuleSet.C4, C4Check.NO_LINES_LEFT), scores, new_text
    if sentences < opts.min_sentences:
        return rule_reason(RuleSet.C4, C4Check.MIN_SENTENCES), scores, new_text
    return None, scores, new_text


def fineweb(text: str, opts: FineWebRules, *, lang: Optional[str] = None) -> Verdict:
    """FineWeb's rules on `text` in language `lang` (None: guessed from the script): lines ending
    in the script's terminal punctuation, words per newline counted as the language needs."""
    language = resolve(text, lang)
    rule, _ = opts.for_language(language)
    return (None, {}) if rule is None else _fineweb(text, rule, language)


def _fineweb(text: str, opts: FineWebRules, language: Language) -> Verdict:
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    n_lines = max(len(lines), 1)
    _, dup_chars = _duplicate_stats(lines)
    n_words = len(words(text))
    scores = {
        "fw_line_punct_ratio": sum(ln.endswith(language.terminal) for ln in lines) / n_lines if language.terminal else 0.0,
        "fw_short_line_ratio": sum(len(ln) <= opts.short_line_chars for ln in lines) / n_lines,
        "fw_dup_line_char_ratio": dup_chars / max(len(text.replace("\n", "")), 1),
        "fw_newline_word_ratio": text.count("\n") / max(n_words, 1),
    }
    checks = [
        (FW.LINE_PUNCT_RATIO, bool(language.terminal) and scores["fw_line_punct_ratio"] < opts.min_line_punct_ratio),
        (FW.SHORT_LINE_RATIO, scores["fw_short_line_ratio"] > opts.max_short_line_ratio),
        (FW.DUP_LINE_CHAR_RATIO, scores["fw_dup_line_char_ratio"] > opts.max_dup_line_char_ratio),
        (FW.NEWLINE_WORD_RATIO, scores["fw_newline_word_ratio"] > opts.max_newline_word_ratio),
    ]
    return _first_failure(RuleSet.FINEWEB, checks), scores


def _first_failure(rule_set: str, checks: list[tuple[str, bool]]) -> Optional[str]:
    for name, failed in checks:
        if failed:
            return rule_reason(rule_set, name)
    return None


@dataclass(frozen=True)
class RuleSpec:
    """One fixed rule set, declared once: its name (the config key, the prefix of its reasons),
    its options class, the scores it writes and the function that judges a text.

    `judge(text, options for the document's language, language)` returns (reason or None,
    scores, text): only a rule that `rewrites` the text (C4 removes lines) returns a changed one.
    """

    options: type  # a _Rules subclass; its RULE is the rule set's name
    scores: tuple[str, ...]  # "{n}" stands for each n-gram size the options name
    judge: Callable[[str, Any, Language], tuple[Optional[str], Scores, str]]
    rewrites: bool = False
    source: str = ""

    @property
    def name(self) -> str:
        return self.options.RULE


def _verdict(fn: Callable[[str, Any, Language], Verdict]) -> Callable[[str, Any, Language], tuple[Optional[str], Scores, str]]:
    def judge(text: str, opts: Any, language: Language) -> tuple[Optional[str], Scores, str]:
        reason, scores = fn(text, opts, language)
        return reason, scores, text
    return judge


#: The fixed web-text rule sets, by name. `clean.quality.order` runs the enabled ones in its order.
RULES: dict[str, RuleSpec] = {spec.name: spec for spec in (
    RuleSpec(C4Rules, ("c4_lines_removed", "c4_sentences"), _c4_filter, rewrites=True,
             source="Raffel et al. 2020 (C4), datatrove C4QualityFilter"),
    RuleSpec(GopherRepetition,
             ("gr_dup_line_frac", "gr_dup_para_frac", "gr_dup_line_char_frac", "gr_dup_para_char_frac",
              "gr_top_{n}gram_frac", "gr_dup_{n}gram_frac"),
             _verdict(_gopher_repetition), source="Rae et al. 2021 (Gopher), appendix A"),
    RuleSpec(GopherQuality,
             ("gq_words", "gq_mean_word_len", "gq_symbol_word_ratio", "gq_bullet_lines_ratio",
              "gq_ellipsis_lines_ratio", "gq_alpha_words_ratio", "gq_stop_words"),
             _verdict(_gopher_quality), source="Rae et al. 2021 (Gopher), appendix A"),
    RuleSpec(FineWebRules,
             ("fw_line_punct_ratio", "fw_short_line_ratio", "fw_dup_line_char_ratio", "fw_newline_word_ratio"),
             _verdict(_fineweb), source="Penedo et al. 2024 (FineWeb), datatrove FineWebQualityFilter"),
)}
#: C4 first: it removes lines, and the rules after it judge what is left.
DEFAULT_ORDER = (RuleSet.C4, RuleSet.GOPHER_REPETITION, RuleSet.GOPHER_QUALITY, RuleSet.FINEWEB)


class QualityOptions(BaseModel):
    """The fixed rule sets (each off by default) and the order the enabled ones run in."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    order: list[str] = Field(default_factory=lambda: list(DEFAULT_ORDER),
                             description="the order in which the enabled rule sets (the keys below) run")
    gopher_quality: GopherQuality = Field(
        default_factory=GopherQuality, description="Gopher quality rules (Rae et al. 2021): word counts and lengths, "
        "symbols, bullets, stop words")
    gopher_repetition: GopherRepetition = Field(
        default_factory=GopherRepetition, description="Gopher repetition rules: repeated lines, paragraphs and "
        "n-grams")
    c4: C4Rules = Field(
        default_factory=C4Rules, description="C4 rules (Raffel et al. 2020): removes bad lines, then judges what is "
        "left")
    fineweb: FineWebRules = Field(
        default_factory=FineWebRules, description="FineWeb rules (Penedo et al. 2024): line punctuation, short "
        "lines, duplicate lines, newlines")

    @model_validator(mode="after")
    def _known_order(self) -> "QualityOptions":
        unknown = [name for name in self.order if name not in RULES]
        if unknown:
            raise ValueError(f"order: unknown rule set {unknown[0]!r} (known: {', '.join(RULES)})")
        if len(set(self.order)) != len(self.order):
            raise ValueError("order: a rule set is named twice")
        missing = [name for name in RULES if getattr(self, name).enabled and name not in self.order]
        if missing:
            raise ValueError(f"order: {missing[0]} is enabled but not in the order")
        return self

    def enabled(self) -> list[tuple[RuleSpec, Any]]:
        """(spec, options) of the enabled rule sets, in `order`."""
        return [(RULES[name], getattr(self, name)) for name in self.order if getattr(self, name).enabled]


def apply_rules(
    text: str, opts: QualityOptions, *, lang: Optional[str] = None, notes: Optional[list[str]] = None
) -> tuple[Optional[str], Scores, str]:
    """Run the enabled rule sets in `opts.order` on `text` in language `lang` (a record's `lang`
    field; None: guessed from the dominant script); the first that fails decides.

    Returns (reason or None, all scores computed, the text after any rule that rewrites it). A rule
    set that cannot judge the language is skipped; when `notes` is a list, one line per skipped
    rule set is appended to it, e.g. "gopher_quality: no stop words for 'th'".
    """
    scores: Scores = {}
    language = None
    for spec, rule_opts in opts.enabled():
        language = language or resolve(text, lang)
        rule, why = rule_opts.for_language(language)
        if rule is None:
            if notes is not None:
                notes.append(f"{spec.name}: {why}")
            continue
        reason, s, text = spec.judge(text, rule, language)
        scores.update(s)
        if reason:
            return reason, scores, text
    return None, scores, text


def skip_summary(counts: dict[str, int]) -> list[str]:
    """Report lines from counted notes: "gopher_quality: no stop words for 'th'; rule skipped
    for 37 documents", sorted by note."""
    return [f"{note}; rule skipped for {n} document{'s' if n != 1 else ''}" for note, n in sorted(counts.items())]
