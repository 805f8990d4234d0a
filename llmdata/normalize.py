"""Text normalization: one small function per step, composed by `Normalizer` from the config.

The defaults keep the text a language model should see faithful: nothing whose change alters
meaning is touched. Unicode NFC (canonical composition: the same text, one spelling of it), the
invisible junk removed (C0/C1 controls, zero-width space, BOM, soft hyphen, bidi controls), runs of
spaces and blank lines collapsed, trailing spaces cut. Kept as written: superscripts, subscripts and
other compatibility characters (``x²`` is not ``x2``), the zero-width joiner and non-joiner (Persian,
Malayalam and Sinhala spelling, emoji sequences), full-width punctuation and the ideographic space,
leading indentation (manuals and docstrings carry code). NFKC compatibility folding is opt-in
(``nfkc: true``) for training text and is what dedup keys and features use. The aggressive steps
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
from llmdata.langid import is_code_text

#: Format characters that are invisible junk in training text: soft hyphen, zero-width space, word
#: joiner, BOM / zero-width no-break space, the bidi marks, embeddings, overrides and isolates (the
#: "Trojan Source" characters) and the deprecated format characters U+206A-206F. Every other format
#: character is kept: ZWJ/ZWNJ (U+200D/U+200C) spell words in Persian, Malayalam, Sinhala and join
#: emoji; tag characters spell flag sequences; Arabic number signs and Egyptian hieroglyph controls
#: are visible in rendering.
INVISIBLE_FORMAT = "\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u206f\ufeff"
# Cc (controls: U+0000-001F and U+007F-009F) except tab and newline, and the junk format
# characters above. Explicit classes, so the stdlib engine runs them (2x the `regex` module here).
_INVISIBLE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{INVISIBLE_FORMAT}]")
# Characters that end a line: vertical tab, form feed, NEL, line and paragraph separators.
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_EXOTIC_SPACE = regex.compile(r"[^\S\n\t \u3000]")  # NBSP, thin and en spaces, etc.
# Runs of 2+ spaces inside a line, not indentation; the ideographic space (U+3000) is CJK
# typesetting and stays. Unicode's `(?<=\S)[^\S\n\u3000]{2,}(?=\S)` written for a text whose only
# whitespace is ASCII or U+3000 (what collapse_spaces leaves after _EXOTIC_SPACE), with explicit
# classes, so the stdlib engine runs it (4x the `regex` module here).
_HSPACE_RUN = re.compile(r"(?<=[^\t\n\x0b\x0c\r \u3000])[\t\x0b\x0c\r ]{2,}(?=[^\t\n\x0b\x0c\r \u3000])")
_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_WORD = regex.compile(r"\w+", regex.UNICODE)

#: Typographic characters replaced by plain ones when `replace_special` is on.
DEFAULT_SPECIAL = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...", "\u00ab": '"', "\u00bb": '"', "\u2022": "*",
}


_ASCII_CONTROLS = bytes(c for c in range(128) if (c < 32 and c not in (9, 10, 11, 12)) or c == 127)
_ASCII_BREAKS = bytes.maketrans(b"\x0b\x0c", b"\n\n")


def remove_invisible(text: str) -> str:
    """Drop controls and the invisible format characters of `INVISIBLE_FORMAT`; line breaks (CR,
    CRLF, VT, FF, NEL, U+2028, U+2029) become LF, so the words on either side stay apart.

    ZWJ, ZWNJ, variation selectors and tag characters are kept (they change what is written).
    """
    if text.isascii():  # only C0 controls and DEL can be invisible; bytes.translate is C speed
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text.encode("ascii").translate(_ASCII_BREAKS, _ASCII_CONTROLS).decode("ascii")
    return _INVISIBLE.sub("", _LINE_BREAKS.sub("\n", text))


_VISIBLE = regex.compile(r"[^\s\p{Cc}\p{Cf}\uFE00-\uFE0F\U000E0100-\U000E01EF]")


def has_visible(text: str) -> bool:
    """Whether anything would be drawn: a character other than whitespace, controls, format
    characters (ZWJ, ZWNJ, tags kept by `remove_invisible`) and variation selectors. A text of
    joiners alone is kept by normalization but has nothing to read."""
    return _VISIBLE.search(text) is not None


def nfc(text: str) -> str:
    """Unicode NFC (UAX #15): canonical composition, e.g. ``e`` + U+0301 becomes ``é``. Canonically
    equivalent texts are the same text, so this changes spelling, never meaning. (It does map the
    CJK compatibility ideographs U+F900-FAFF to their unified ideographs: their canonical
    decomposition.)"""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def nfkc(text: str) -> str:
    """Unicode NFKC (UAX #15): compatibility folding on top of NFC. Full-width forms, ligatures,
    superscripts (``x²`` becomes ``x2``), circled and other compatibility characters become plain
    ones: right for keys and features, a change of meaning in training text."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def collapse_spaces(text: str) -> str:
    """Unusual spaces (NBSP, thin, en, em spaces) become plain spaces, and runs of spaces inside a
    line become one space.

    Indentation at the start of a line is kept: code in manuals depends on it. The ideographic
    space U+3000 (full-width, used to indent and separate in CJK text) is kept as written.
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

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    nfc: bool = Field(True, description="canonical composition: same text, one spelling")
    nfkc: bool = Field(False, description="compatibility folding (x² -> x2, full-width -> ASCII); replaces NFC when on")
    remove_invisible: bool = Field(
        True, description="remove control and invisible characters (ZWSP, BOM, soft hyphen, bidi controls; never "
        "ZWJ/ZWNJ)")
    collapse_spaces: bool = Field(
        True, description="runs of spaces inside a line become one space; indentation is kept")
    max_blank_lines: Optional[int] = Field(
        1, ge=0, description="at most this many consecutive blank lines; null: unlimited")
    strip_trailing: bool = Field(True, description="remove spaces at the end of each line")
    code_layout: Literal["keep", "normalize"] = Field(
        "keep", description="code (llmdata.langid's rule: at least 30% of the sample's lines look like source): keep "
        "its spaces inside lines, trailing spaces and blank lines as written (string literals, aligned columns, "
        "heredocs); normalize: collapse them as in prose")
    lowercase: bool = Field(
        False, description="lowercase the whole text (changes what the model learns; off for training text)")
    remove_punctuation: bool = Field(
        False, description="remove punctuation and symbols (for derived keys, not training text)")
    replace_special: bool = Field(
        False, description="replace typographic characters (curly quotes, dashes...) by plain ASCII ones")
    special_map: dict[str, str] = Field(
        default_factory=dict, description="character replacements {from: to}, applied even with replace_special off; "
        "with it on, they win over the built-in ones")
    word_map: dict[str, str] = Field(
        default_factory=dict, description="whole-word replacements, {word: replacement} (abbreviations, spellings)")
    word_map_case_sensitive: bool = Field(
        False, description="match `word_map` words with their case; off: case-insensitive")
    stem: Optional[Literal["porter", "snowball", "wordnet"]] = Field(
        None, description="reduce words to their stem (porter | snowball) or lemma (wordnet); null: off")
    stem_language: str = Field("english", description="language of the snowball stemmer, e.g. english, german")


class Normalizer:
    """The configured steps in a fixed, tested order.

    Order matters for idempotence: invisible characters go before NFC/NFKC (removing a soft hyphen
    can let a combining mark compose), and spacing is tidied last because NFKC, punctuation removal
    and replacements can all create new spaces.
    """

    def __init__(self, options: NormalizeOptions | None = None):
        self.options = options or NormalizeOptions()
        o = self.options
        special = {**DEFAULT_SPECIAL, **o.special_map} if o.replace_special else dict(o.special_map)
        self._word_mapper = make_word_mapper(o.stem, o.stem_language) if o.stem else None
        steps: list[Callable[[str], str]] = []
        if o.remove_invisible:
            steps.append(remove_invisible)
        form = nfkc if o.nfkc else nfc if o.nfc else None
        if form is not None:
            steps.append(form)
        if special:
            steps.append(lambda t: replace_chars(t, special))
        if o.lowercase:
            steps.append(lowercase)
            if form is not None:  # lowercasing can leave a text that NFC/NFKC would change again
                steps.append(form)
        if o.word_map:
            steps.append(lambda t: replace_words(t, o.word_map, o.word_map_case_sensitive))
        if o.remove_punctuation:
            steps.append(remove_punctuation)
        if self._word_mapper is not None:
            mapper = self._word_mapper
            steps.append(lambda t: map_words(t, mapper))
        spacing: list[Callable[[str], str]] = []
        if o.collapse_spaces:
            spacing.append(collapse_spaces)
        if o.strip_trailing:
            spacing.append(strip_trailing)
        if o.max_blank_lines is not None:
            spacing.append(lambda t: limit_blank_lines(t, o.max_blank_lines))
        self._steps = steps
        self._spacing = spacing

    def __call__(self, text: str) -> str:
        """The text through every configured step. With `code_layout: keep`, a text that is code
        after the character steps (llmdata.langid `code_line_share` of its sample) skips the spacing
        steps: in code a run of spaces can be inside a string literal or align columns, and
        blank lines and trailing spaces can be data. Deciding on the text the spacing steps would
        see keeps the composition idempotent."""
        for step in self._steps:
            text = step(text)
        if self._spacing and self.options.code_layout == "keep" and is_code_text(text):
            return text
        for step in self._spacing:
            text = step(text)
        return text

