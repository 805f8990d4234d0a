"""Writing systems of a text: which scripts its letters are in, and which one leads.

Every rule, feature and shingle that has to treat scripts without spaces differently (Chinese,
Japanese, Thai, Lao, Khmer, Myanmar) asks this module, so the choice is made in one place.

Scripts are Unicode's Script property (UAX #24) as the `regex` module knows it, grouped as users
name them: Hiragana and Katakana are "kana", Hangul is "hangul", and the scripts of South and
South-East Asia keep their own names. Characters whose script is Common or Inherited (digits,
punctuation, spaces, combining marks) belong to no script and are not counted.
"""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
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
# Letters only (\p{L}): a script's own combining marks (Devanagari vowel signs, Thai tone marks)
# belong to the script but are not letters, as the docstring of script_counts says.
_RUNS = regex.compile("|".join(
    "([[" + "".join(fr"\p{{Script={s}}}" for s in scripts) + r"]&&\p{L}]+)" for scripts in SCRIPT_GROUPS.values()
) + r"|((?![\p{Script=Common}\p{Script=Inherited}])\p{L})", regex.V1)  # one letter of any other script
_ASCII_LETTER_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")


def script_counts(text: str) -> Counter:
    """Letters per script group, e.g. ``Counter({"latin": 120, "han": 35})``.

    Letters of a script not in `SCRIPT_GROUPS` count as "other"; digits, punctuation, spaces and
    combining marks count nowhere. ASCII letters are counted with bytes.translate; only the
    non-ASCII remainder goes through the script regex.
    """
    ascii_part = text.encode("ascii", "ignore")  # ASCII letters are all Latin: counted with bytes
    n = len(ascii_part) - len(ascii_part.translate(None, _ASCII_LETTER_BYTES))
    counts: Counter = Counter({"latin": n}) if n else Counter()
    if len(ascii_part) == len(text):
        return counts
    for m in _RUNS.finditer(_ASCII_RUN.sub(" ", text)):
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


# Han and kana letters are one word each (dolma's rule for CJK, the per-character choice of
# FineWeb-2's fallbacks): a Chinese "word" is then a character, comparable across documents,
# where a \w+ run would be a whole clause. The iteration marks and the prolonged sound mark
# (Common script) stay with the letter before them.
_CJK_CHAR = r"[\p{Han}\p{Hiragana}\p{Katakana}][\u3005\u309d\u309e\u30fc\u30fd\u30fe\uff70]*"
# A Thai run may hold "_" mnemonic markers of UI strings ("เลิ_กเชื่อมต่อ": GTK/Qt accelerators mark
# the key letter with a preceding "_"); an underscore directly before a Thai letter is not a word break.
_THAI_RUN = r"(?:_?\p{Thai}+)+"
# Lao, Khmer and Myanmar have no segmenter here: one word per letter with its combining marks.
_SEA_CLUSTER = r"[\p{Lao}\p{Khmer}\p{Myanmar}]\p{M}*"
_SPACELESS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\u3005\u309d\u309e\u30fc\u30fd\u30fe\uff70"
_WORDS = regex.compile(rf"({_CJK_CHAR})|({_THAI_RUN})|({_SEA_CLUSTER})|([\w--[{_SPACELESS}]]+)", regex.V1)
# A number is one word: digits joined by a separator that Unicode's word boundaries keep inside a
# number (UAX #29 rules WB11 and WB12: MidNum "," ";", MidNumLet ".", Single_Quote "'"), as in
# "0.9468822170900693", "1,000", "10.0.94.13". (UAX #29 also joins letters across "." and "'",
# "os.path.join", "can't"; those stay apart here: in code they are separate identifiers.)
_NUMBER = r"\p{Word_Break=Numeric}+(?:[\p{Word_Break=MidNum}\p{Word_Break=MidNumLet}\p{Word_Break=Single_Quote}]\p{Word_Break=Numeric}+)+"
# A number that runs into letters ("1.5x") is left to the plain pattern (UAX #29 joins digits and letters).
_WORDS_NUMBERS = regex.compile(
    rf"({_CJK_CHAR})|({_THAI_RUN})|({_SEA_CLUSTER})|({_NUMBER}(?![\w--[{_SPACELESS}]])|[\w--[{_SPACELESS}]]+)", regex.V1)
_NUMBER_OR_WORD = regex.compile(rf"{_NUMBER}(?!\w)|\w+")
_NUMBER_OR_WORD_ASCII = re.compile(r"[0-9]+(?:[,;.'][0-9]+)+(?!\w)|\w+")  # the same tokens on ASCII text
_ANY_SPACELESS = regex.compile(f"[{_SPACELESS}]")
_WORD_ANY = regex.compile(r"\w+")
_WORD_ASCII = re.compile(r"\w+")  # the same tokens on ASCII text; the stdlib engine is 1.5x faster here


@lru_cache(maxsize=1 << 16)
def _same_word_class(ch: str) -> bool:
    """Whether the stdlib engine's \\w (str.isalnum() or "_") and `regex`'s Unicode \\w (letters,
    marks, digits, connector punctuation, join controls) agree on `ch`: true of typographic quotes
    and dashes, accented letters, most scripts' letters; false of combining marks and ZWJ/ZWNJ."""
    return (ch.isalnum() or ch == "_") == bool(_WORD_ANY.fullmatch(ch))


#: The word lists newmm can segment Thai with. "pythainlp": PyThaiNLP's default (62,106 entries), which
#: adds to single words many multi-word compounds and set phrases (สิ่งอำนวยความสะดวก "facility",
#: literally thing-provide-NOM-convenient, 18 code points; การเปลี่ยนแปลง "the changing"), the tokenizer
#: FineWeb-2's Thai thresholds were fit with. "icu": the Thai dictionary of ICU's BreakIterator (the
#: Unicode word-boundary implementation of ICU; 26,383 entries, shipped in PyThaiNLP as icubrk_th.txt),
#: which lists the parts of those compounds but not the compounds.
THAI_DICTIONARIES = ("pythainlp", "icu")


@lru_cache(maxsize=None)
def _icu_trie():
    from pythainlp.corpus import thai_icu_words
    from pythainlp.util import Trie

    return Trie(thai_icu_words())


def thai_words(run: str, dictionary: str = "pythainlp") -> list[str]:
    """A run of Thai letters cut into words by PyThaiNLP's dictionary segmenter (newmm), with the
    word list `dictionary` ("pythainlp" or "icu", `THAI_DICTIONARIES`).

    Source: PyThaiNLP `pythainlp/tokenize/newmm.py` (maximal matching over the dictionary, Thai
    Character Cluster boundaries); ICU's list: `pythainlp/corpus/icubrk_th.txt`, from ICU's
    `icu4c/source/data/brkitr/dictionaries/thaidict.txt`. Both ship in the package. Raises
    ValueError on another dictionary name.
    """
    from pythainlp.tokenize import word_tokenize  # imported on first Thai text (0.05 s, then 0.4 s to load the dictionary)

    if dictionary not in THAI_DICTIONARIES:
        raise ValueError(f"Thai dictionary {dictionary!r}: expected one of {', '.join(THAI_DICTIONARIES)}")
    custom = _icu_trie() if dictionary == "icu" else None
    return [w for w in word_tokenize(run, custom_dict=custom, engine="newmm", keep_whitespace=False) if w.strip()]


def words(text: str, thai_dictionary: str = "pythainlp", whole_numbers: bool = False) -> list[str]:
    """The words of a text, segmented as its scripts need.

    - Han, Hiragana, Katakana: one word per character (with a following iteration or
      prolonged-sound mark);
    - Thai: PyThaiNLP's newmm dictionary segmenter on each Thai run, with the word list
      `thai_dictionary` (`thai_words`; an "_" right before a Thai letter is a UI mnemonic marker,
      "เลิ_กเชื่อมต่อ", and is dropped rather than splitting a word);
    - Lao, Khmer, Myanmar: one word per letter and its combining marks (no segmenter here);
    - every other script: runs of word characters (letters with their combining marks, digits,
      underscore), which is what Unicode word boundaries give for space-separated scripts,
      code identifiers included.

    With `whole_numbers`, a number is one word, its digits joined by the separators Unicode's word
    boundaries keep inside a number (UAX #29 WB11, WB12: "0.5", "1,000", "10.0.94.13"); without,
    "0.5" is the two words "0" and "5".

    ASCII text, and text whose non-ASCII characters the stdlib engine's \\w classes as `regex`'s does,
    take the stdlib pattern (several times faster). Returns the words in text order.
    """
    if text.isascii():
        return (_NUMBER_OR_WORD_ASCII if whole_numbers else _WORD_ASCII).findall(text)
    rest = _ASCII_RUN.sub("", text)  # the non-ASCII characters: what the patterns below must look at
    if not _ANY_SPACELESS.search(rest):  # no Han, kana, Thai, Lao, Khmer, Myanmar: plain \w+ runs
        if whole_numbers:
            return _NUMBER_OR_WORD.findall(text)
        if all(map(_same_word_class, set(rest))):  # e.g. English with typographic quotes
            return _WORD_ASCII.findall(text)
        return _WORD_ANY.findall(text)
    out: list[str] = []
    for m in (_WORDS_NUMBERS if whole_numbers else _WORDS).finditer(text):
        if m.lastindex == 2:
            out.extend(thai_words(m.group().replace("_", ""), thai_dictionary))
        else:
            out.append(m.group())
    return out
