"""Text normalization: one small function per step, composed by `Normalizer` from the config.

The defaults keep what a language model should see faithful: Unicode NFKC, invisible control and
zero-width characters removed, runs of spaces and blank lines collapsed, trailing spaces cut.
Leading indentation is kept, because manuals and docstrings carry code. The aggressive steps
(lowercase, punctuation removal, stemming, lemmatization) are for derived keys and features.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Callable, Literal, Optional

import regex
from pydantic import BaseModel, ConfigDict, Field

from llmdata.errors import LlmpipeError

# Cc (controls) except tab and newline, Cf (format: zero-width, bidi marks, soft hyphen, BOM),
# and the line/paragraph separators; carriage returns become newlines first.
_INVISIBLE = regex.compile(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}--[\t\n]]", regex.V1)
_HSPACE_RUN = re.compile(r"(?<=\S)[^\S\n]{2,}(?=\S)")  # inside a line, not indentation
_EXOTIC_SPACE = regex.compile(r"[^\S\n\t ]")  # NBSP, ideographic space, etc.
_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_WORD = regex.compile(r"\w+", regex.UNICODE)

#: Typographic characters replaced by plain ones when `replace_special` is on.
DEFAULT_SPECIAL = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...", "\u00ab": '"', "\u00bb": '"', "\u2022": "*",
}


_ASCII_CONTROLS = bytes(c for c in range(128) if (c < 32 and c not in (9, 10)) or c == 127)


def remove_invisible(text: str) -> str:
    """Drop control, format (zero-width, bidi) and separator characters; CR and CRLF become LF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():  # only C0 controls and DEL can be invisible; bytes.translate is C speed
        return text.encode("ascii").translate(None, _ASCII_CONTROLS).decode("ascii")
    return _INVISIBLE.sub("", text)


def nfkc(text: str) -> str:
    """Unicode NFKC: full-width forms, ligatures and compatibility characters become canonical."""
    return unicodedata.normalize("NFKC", text)


def collapse_spaces(text: str) -> str:
    """Unusual spaces become plain spaces, and runs of spaces inside a line become one space.

    Indentation at the start of a line is kept: code in manuals depends on it.
    """
    if not text.isascii() or any(c in text for c in "\x0b\x0c\x1c\x1d\x1e\x1f"):
        text = _EXOTIC_SPACE.sub(" ", text)
    if "  " not in text and "\t" not in text:
        return text
    return _HSPACE_RUN.sub(" ", text)


def strip_trailing(text: str) -> str:
    """Remove spaces and tabs at line ends, and blank lines at the start and end of the text."""
    return "\n".join(line.rstrip(" \t") for line in text.split("\n")).strip("\n")


def limit_blank_lines(text: str, max_blank: int = 1) -> str:
    """Collapse runs of blank lines to at most `max_blank`."""
    pattern = re.compile(r"\n[ \t]*(?:\n[ \t]*){%d,}" % (max_blank + 1))
    return pattern.sub("\n" * (max_blank + 1), text)


def lowercase(text: str) -> str:
    return text.lower()


def remove_punctuation(text: str) -> str:
    """Replace punctuation and symbol runs with a space (then spaces are collapsed again)."""
    return _PUNCT.sub(" ", text)


def replace_chars(text: str, mapping: dict[str, str]) -> str:
    """Replace single characters or short strings (typographic quotes, dashes) by plain ones."""
    if not mapping:
        return text
    pattern = _alternation(tuple(sorted(mapping, key=len, reverse=True)))
    return pattern.sub(lambda m: mapping[m.group(0)], text)


def replace_words(text: str, mapping: dict[str, str], case_sensitive: bool = False) -> str:
    """Expand abbreviations or fix spellings, matching whole words only."""
    if not mapping:
        return text
    table = mapping if case_sensitive else {k.lower(): v for k, v in mapping.items()}
    pattern = _word_alternation(tuple(sorted(table, key=len, reverse=True)), case_sensitive)
    if case_sensitive:
        return pattern.sub(lambda m: table[m.group(0)], text)
    return pattern.sub(lambda m: table[m.group(0).lower()], text)


@lru_cache(maxsize=64)
def _alternation(keys: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(re.escape(k) for k in keys))


@lru_cache(maxsize=64)
def _word_alternation(keys: tuple[str, ...], case_sensitive: bool) -> regex.Pattern:
    flags = 0 if case_sensitive else regex.IGNORECASE
    body = "|".join(regex.escape(k) for k in keys)
    return regex.compile(r"(?<!\w)(?:%s)(?!\w)" % body, flags)


class NormalizerUnavailable(LlmpipeError, RuntimeError):
    """A configured step needs data or packages that are not installed (e.g. WordNet)."""


def wordnet_available() -> bool:
    """WordNet needs nltk data that cannot be downloaded at run time; look for it, never fetch."""
    try:
        import nltk

        nltk.data.find("corpora/wordnet")
        return True
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
            return True
        except LookupError:
            return False


def make_word_mapper(kind: str, language: str = "english") -> Callable[[str], str]:
    """A per-word function for stemming (porter, snowball) or lemmatization (wordnet)."""
    if kind == "porter":
        from nltk.stem import PorterStemmer

        return PorterStemmer().stem
    if kind == "snowball":
        from nltk.stem import SnowballStemmer

        return SnowballStemmer(language).stem
    if kind == "wordnet":
        if not wordnet_available():
            raise NormalizerUnavailable(
                "WordNet lemmatization needs the nltk 'wordnet' corpus, which is not installed "
                "(install it with nltk.download('wordnet') where a network is available, or use stem: porter)"
            )
        from nltk.stem import WordNetLemmatizer

        return WordNetLemmatizer().lemmatize
    raise ValueError(f"unknown stemmer {kind!r}")


def map_words(text: str, mapper: Callable[[str], str]) -> str:
    """Apply a per-word function to every word, leaving everything between words as it was."""
    cache: dict[str, str] = {}

    def one(m: regex.Match) -> str:
        word = m.group(0)
        if word not in cache:
            cache[word] = mapper(word)
        return cache[word]

    return _WORD.sub(one, text)


class NormalizeOptions(BaseModel):
    """Which steps run; the defaults are the faithful form a language model should train on."""

    model_config = ConfigDict(extra="forbid")

    nfkc: bool = True
    remove_invisible: bool = True
    collapse_spaces: bool = True
    max_blank_lines: Optional[int] = Field(1, ge=0)
    strip_trailing: bool = True
    lowercase: bool = False
    remove_punctuation: bool = False
    replace_special: bool = False
    special_map: dict[str, str] = Field(default_factory=dict)
    word_map: dict[str, str] = Field(default_factory=dict)
    word_map_case_sensitive: bool = False
    stem: Optional[Literal["porter", "snowball", "wordnet"]] = None
    stem_language: str = "english"


class Normalizer:
    """The configured steps in a fixed, tested order.

    Order matters for idempotence: invisible characters go before NFKC (removing a zero-width
    joiner can let a combining mark compose), and spacing is tidied last because NFKC, punctuation
    removal and replacements can all create new spaces.
    """

    def __init__(self, options: NormalizeOptions | None = None):
        self.options = options or NormalizeOptions()
        o = self.options
        special = {**DEFAULT_SPECIAL, **o.special_map} if o.replace_special else dict(o.special_map)
        self._word_mapper = make_word_mapper(o.stem, o.stem_language) if o.stem else None
        steps: list[Callable[[str], str]] = []
        if o.remove_invisible:
            steps.append(remove_invisible)
        if o.nfkc:
            steps.append(nfkc)
        if special:
            steps.append(lambda t: replace_chars(t, special))
        if o.lowercase:
            steps.append(lowercase)
            if o.nfkc:  # lowercasing can leave a text that NFKC would change again
                steps.append(nfkc)
        if o.word_map:
            steps.append(lambda t: replace_words(t, o.word_map, o.word_map_case_sensitive))
        if o.remove_punctuation:
            steps.append(remove_punctuation)
        if self._word_mapper is not None:
            mapper = self._word_mapper
            steps.append(lambda t: map_words(t, mapper))
        if o.collapse_spaces:
            steps.append(collapse_spaces)
        if o.strip_trailing:
            steps.append(strip_trailing)
        if o.max_blank_lines is not None:
            steps.append(lambda t: limit_blank_lines(t, o.max_blank_lines))
        self._steps = steps

    def __call__(self, text: str) -> str:
        for step in self._steps:
            text = step(text)
        return text
