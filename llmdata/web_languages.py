"""What the web rules (quality.py) need to know about a language: its stop words, how its words
are split, which characters end its lines and sentences, and FineWeb-2's re-derived thresholds.

Sources:
- Stop words and per-language thresholds: FineWeb-2 (Penedo et al. 2025), `configs/{iso3}_{script}.yml`
  in github.com/huggingface/fineweb-2 (cmn_Hani, jpn_Jpan, kor_Hang, tha_Thai, rus_Cyrl, arb_Arab,
  heb_Hebr, hin_Deva, deu_Latn, fra_Latn, spa_Latn, ita_Latn, por_Latn, ukr_Cyrl, ell_Grek). Their lists were counted over tokens of
  their word tokenizers; entries that are punctuation there ("·", "،", "・") or that a whitespace
  split never produces (French "l'", "d'", Italian "l'") are left out here. Korean is the exception: FineWeb-2's
  list holds particles a morphological tokenizer cuts off ("의", "는"); words are
  whitespace-separated here (Gopher), so the Korean list is written for that split: bound nouns
  and auxiliaries Korean writes as separate words (수, 것, 있다, ...).
- English stop words: the Gopher paper's eight (Rae et al. 2021, appendix A).
- Word splitting: whitespace (Gopher) for scripts with spaces; `llmdata.scripts.words` for
  scripts written without spaces (one word per Han/kana character, PyThaiNLP for Thai), as
  datatrove's `utils/word_tokenizers.py` swaps in a segmenter per language.
- Terminal punctuation: the Unicode sentence terminators of each script (UAX #29 STerm/ATerm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import regex

from llmdata.scripts import NO_SPACE_SCRIPTS, dominant_script

#: Latin-script line ends of C4 and FineWeb (quotes close a sentence too)
_LATIN_END = (".", "!", "?", '"', "'", "\u201d", "\u2019")

#: script group -> characters that end a line or a sentence in that script ("" = none written)
TERMINAL_BY_SCRIPT: dict[str, tuple[str, ...]] = {
    "han": _LATIN_END + ("\u3002", "\uff01", "\uff1f", "\uff0e", "\uff61", "\u2026", "\u300d", "\u300f", "\uff09"),
    "kana": _LATIN_END + ("\u3002", "\uff01", "\uff1f", "\uff0e", "\uff61", "\u2026", "\u300d", "\u300f", "\uff09"),
    "arabic": _LATIN_END + ("\u061f", "\u06d4"),  # ؟ Arabic question mark, ۔ Urdu full stop
    "devanagari": _LATIN_END + ("\u0964", "\u0965"),  # । danda, ॥ double danda
    "bengali": _LATIN_END + ("\u0964", "\u0965"),
    "greek": _LATIN_END + (";", "\u037e"),  # the Greek question mark
    "armenian": _LATIN_END + ("\u0589",),
    "ethiopic": _LATIN_END + ("\u1362", "\u1367"),
    "myanmar": _LATIN_END + ("\u104b",),
    "khmer": _LATIN_END + ("\u17d4", "\u17d5"),
    "thai": (),  # Thai ends sentences with a space, not a mark
    "lao": (),
}

#: sentence ends: ASCII marks before a space or the end; the other scripts' marks anywhere
SENTENCE_END = regex.compile(r"[.!?]+(?=\s|$)|[\u3002\uff01\uff1f\uff0e\uff61\u061f\u06d4\u0964\u0965\u0589\u1362\u1367\u104b\u17d4\u17d5]+")

#: language -> its usual script group (for terminal punctuation and word splitting)
SCRIPT_OF: dict[str, str] = {
    "en": "latin", "de": "latin", "fr": "latin", "es": "latin", "it": "latin", "pt": "latin", "nl": "latin",
    "zh": "han", "ja": "kana", "ko": "hangul", "th": "thai", "lo": "lao", "km": "khmer", "my": "myanmar",
    "ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic", "ar": "arabic", "fa": "arabic", "ur": "arabic",
    "he": "hebrew", "hi": "devanagari", "mr": "devanagari", "ne": "devanagari", "bn": "bengali", "el": "greek",
    "hy": "armenian", "am": "ethiopic", "ka": "georgian", "ta": "tamil",
    # more labels py3langid gives (llmdata.langid): it names Mandarin "wuu" or "yue" often (40 of
    # 168 of this machine's zh_CN/zh_TW catalog entries and tutor lessons), and without an entry
    # the script came from the text, which is Latin in a Chinese entry full of option names, so
    # C4 took only Latin marks as line ends and removed every Chinese line.
    "yue": "han", "wuu": "han", "arz": "arabic", "ary": "arabic", "hbo": "hebrew", "sa": "devanagari",
    "gom": "devanagari", "grc": "greek",
}

#: script group -> the language guessed when a document carries no `lang` (only scripts that one
#: language dominates on the web; Latin defaults to English, the rules' original language)
LANGUAGE_OF_SCRIPT: dict[str, str] = {
    "latin": "en", "han": "zh", "kana": "ja", "hangul": "ko", "thai": "th", "cyrillic": "ru",
    "arabic": "ar", "hebrew": "he", "devanagari": "hi", "greek": "el", "bengali": "bn", "tamil": "ta",
    "georgian": "ka", "armenian": "hy", "ethiopic": "am", "lao": "lo", "khmer": "km", "myanmar": "my",
}

STOP_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "be", "to", "of", "and", "that", "have", "with"),
    "zh": ("的", "年", "在", "月", "是", "和", "日", "了", "於", "為", "有", "被", "人", "中", "为", "他", "與", "後", "也", "而", "由"),
    "ja": ("の", "に", "を", "は", "た", "て", "が", "と", "で", "年", "し", "月", "れ", "さ"),
    "ko": ("수", "것", "있다", "있습니다", "및", "그", "이", "등", "더", "또는", "위해", "때", "대한", "있는", "하는", "없는", "할", "한"),
    "th": ("ใน", "ที่", "และ", "ของ", "เป็น", "มี", "การ", "ได้"),
    "ru": ("в", "и", "на", "с", "года", "по", "году", "из", "был", "к", "не", "от", "что", "за", "для", "его", "как", "а", "он", "также", "до", "после"),
    "ar": ("في", "من", "على", "إلى", "عام", "أن", "مع", "أو", "هو", "عن", "التي", "كان", "بين", "ما", "كانت", "هي", "المتحدة", "بعد"),
    "he": ("של", "את", "על", "הוא", "עם", "בשנת", "גם", "היה", "היא", "לאחר", "לא", "ידי", "בין", "או", "כי"),
    "hi": ("के", "में", "है", "की", "और", "से", "का", "को", "एक", "हैं", "पर"),
    "de": ("der", "und", "die", "in", "von", "im", "den", "des", "mit", "das", "er", "dem", "als", "wurde", "für"),
    "fr": ("de", "la", "le", "et", "à", "en", "des", "du", "les", "est", "un", "une", "il", "dans", "par", "au"),
    "es": ("de", "la", "en", "el", "y", "a", "que", "del", "los", "se", "por", "un", "con", "una", "las", "su"),
    "it": ("di", "e", "il", "la", "in", "a", "del", "che", "è", "della", "un", "per", "nel", "con", "da", "i", "una"),
    "pt": ("de", "a", "e", "o", "em", "do", "da", "que", "um", "no", "uma", "com", "para", "na", "é", "foi"),
    "uk": ("у", "в", "на", "і", "з", "та", "до", "року", "за", "що"),
    "el": ("του", "και", "το", "της", "η", "την", "από", "ο", "με", "τον", "να", "που", "των", "στην", "για", "στο", "σε", "είναι", "τη", "τα", "οι"),
}

#: FineWeb-2's re-derived thresholds, as {rule: {field: value}} in llmpipe's field names
_FW2 = {  # lang: (min_mean_word_len, max_mean_word_len, dup_line_frac, top 2/3/4, dup 5..10, line_punct, newline_ratio [unused])
    "zh": (1, 5, 0.287, (0.256, 0.201, 0.171), (0.198, 0.182, 0.167, 0.154, 0.14, 0.127), 0.106, 0.178),
    "ja": (1, 5, 0.375, (0.121, 0.129, 0.145), (0.307, 0.283, 0.264, 0.248, 0.234, 0.223), 0.167, 0.162),
    "ko": (1, 6, 0.374, (0.282, 0.228, 0.185), (0.201, 0.184, 0.168, 0.154, 0.14, 0.127), 0.062, 0.196),
    "th": (2, 10, 0.349, (0.221, 0.197, 0.162), (0.185, 0.168, 0.152, 0.137, 0.124, 0.111), 0.0, 0.153),
    "ru": (3, 11, 0.322, (0.184, 0.164, 0.146), (0.168, 0.156, 0.145, 0.133, 0.121, 0.109), 0.231, 0.139),
    "ar": (2, 9, 0.304, (0.197, 0.172, 0.146), (0.165, 0.153, 0.142, 0.131, 0.12, 0.109), 0.143, 0.189),
    "he": (3, 9, 0.386, (0.1, 0.119, 0.14), (0.192, 0.174, 0.156, 0.143, 0.13, 0.12), 0.3, 0.158),
    "hi": (2, 21, 0.206, (0.208, 0.198, 0.161), (0.135, 0.125, 0.116, 0.108, 0.099, 0.09), 0.091, 0.316),
    "de": (0, 15, 0.263, (0.169, 0.153, 0.137), (0.141, 0.134, 0.126, 0.117, 0.108, 0.098), 0.0, 0.152),
    "fr": (2, 11, 0.264, (0.161, 0.149, 0.134), (0.15, 0.141, 0.131, 0.121, 0.111, 0.1), 0.1, 0.185),
    "es": (4, 14, 0.265, (0.077, 0.097, 0.112), (0.152, 0.137, 0.123, 0.114, 0.107, 0.099), 0.3, 0.171),
    "it": (3, 21, 0.246, (0.198, 0.156, 0.133), (0.144, 0.136, 0.127, 0.118, 0.109, 0.1), 0.025, 0.2),
    "pt": (3, 13, 0.325, (0.093, 0.117, 0.139), (0.19, 0.172, 0.154, 0.142, 0.131, 0.12), 0.154, 0.23),
    "uk": (3, 11, 0.333, (0.086, 0.108, 0.129), (0.176, 0.157, 0.139, 0.125, 0.113, 0.102), 0.308, 0.211),
    "el": (3, 11, 0.31, (0.194, 0.175, 0.156), (0.174, 0.163, 0.153, 0.142, 0.13, 0.119), 0.167, 0.116),
}


#: llmpipe's own adaptation (not FineWeb-2's, which kept 30 characters for every language): a
#: "short line" in characters scaled by how much a character holds. A Han or kana character is
#: about a word, so 30 of them is a full sentence; 30 Latin characters are about 5 words.
_SHORT_LINE_CHARS = {"zh": 10, "ja": 10, "ko": 15}


def fineweb2_defaults(lang: str) -> dict[str, dict]:
    """FineWeb-2's thresholds for `lang` as field values of llmpipe's rule models, or {}
    (plus the short-line length of CJK languages, `_SHORT_LINE_CHARS`).

    English keeps the original papers' values (the rule models' own defaults).
    Zero-valued bounds that FineWeb-2 uses to switch a check off stay zero.
    """
    row = _FW2.get(lang)
    if row is None:
        return {}
    lo, hi, dup_line, top, dup, punct, _newline = row
    # FineWeb-2's newline/word ratios (0.14-0.32) are not taken: they were fit on web pages, and
    # the ratio measures line wrapping more than language. On the vim tutor (same lessons in each
    # language) FineWeb-2's 0.139 for Russian kept 0 of 11 lessons where 0.3 keeps 11 (English: 40/42).
    fineweb = {"min_line_punct_ratio": punct}
    if lang in _SHORT_LINE_CHARS:
        fineweb["short_line_chars"] = _SHORT_LINE_CHARS[lang]
    return {
        "gopher_quality": {"min_mean_word_len": float(lo), "max_mean_word_len": float(hi)},
        "gopher_repetition": {
            "max_dup_line_frac": dup_line,
            "top_ngram_max_frac": dict(zip((2, 3, 4), top)),
            "dup_ngram_max_frac": dict(zip(range(5, 11), dup)),
        },
        "fineweb": fineweb,
    }


@dataclass(frozen=True)
class Language:
    """How the web rules read one language.

    code: ISO 639-1 code ("zh") or "" when unknown; script: its script group;
    spaceless: words come from `llmdata.scripts.words` instead of a whitespace split;
    terminal: line-final characters that end a sentence (empty: the script writes none).
    """

    code: str
    script: str
    spaceless: bool
    terminal: tuple[str, ...]


def normalize_code(lang: Optional[str]) -> str:
    """"zh-Hans", "zh_CN", "ZH" -> "zh"; None, "", "und", "unknown" -> ""."""
    if not lang:
        return ""
    code = regex.split(r"[-_@.]", lang.strip().lower(), maxsplit=1)[0]
    return "" if code in ("und", "unknown", "none", "xx", "zxx") else code


def resolve(text: str, lang: Optional[str] = None) -> Language:
    """The language the rules judge `text` as: `lang` when given (a record's `lang` field),
    else a guess from the text's dominant script (`LANGUAGE_OF_SCRIPT`); text without letters
    is judged as English, the rules' original language."""
    code = normalize_code(lang)
    if code:
        script = SCRIPT_OF.get(code)
        if script is None:  # a language this table does not know: its script decides
            script = dominant_script(text)
    else:
        script = dominant_script(text)
        code = LANGUAGE_OF_SCRIPT.get(script, "") if script != "none" else "en"
        if script == "none":
            script = "latin"
    return Language(code, script, script in NO_SPACE_SCRIPTS, TERMINAL_BY_SCRIPT.get(script, _LATIN_END))
