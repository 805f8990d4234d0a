"""Junk in any language: random letters of any script, random characters of a large script, mojibake.

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

A third score is a document feature that the outlier filter can judge (opt-in since
`junk:random_letters` exists; its normal range depends on the alphabet): `char_entropy`, the conditional entropy H(next | current) in bits of the
letters (case-folded, every other character a space) of the first `ENTROPY_CHARS` characters:
H(bigrams) - H(unigrams), plug-in estimates. Language is predictable from one letter to the next
(English, Russian, Arabic, Hindi prose: 1.5-3.0 bits on this machine's translations), random
letters are not (3.4-3.8 bits for random Latin or Cyrillic words); on a fixed sample length the
estimation bias is the same for every document of a script, and thresholds are per script group.

A fourth score, `letter_dependence` (with `letter_repeat_ratio`), is a fixed rule that needs no
group statistics and works in every script (`junk:random_letters`): in language, which letter follows which is constrained
(spelling, syllable structure, words that recur), so the adjacent-letter pairs of a text are far
fewer than if its letters were drawn independently; in random letters they are not. The score is
the number of distinct adjacent-letter pairs (inside runs of letters, case-folded) divided by the
mean number of distinct pairs in `SHUFFLES` seeded permutations of the same letters over the same
runs: the null hypothesis "independent letters with this document's own letter frequencies" (a
permutation test; Shannon's n-gram view of redundancy, "Prediction and entropy of printed
English", 1951). For a large alphabet (Han, Hangul) in a short sample nearly every pair is distinct
either way, so the rule also asks that pairs repeat no more often than under the permutations
(`letter_repeat_ratio`: language repeats its words 5-40 times more often than chance there). No
alphabet size, language or group is assumed: random letters from any alphabet, uniform or with
natural frequencies, score about 1.0 on both. Calibrated by bench/junk_random_letters.py on this
machine's real text (bench/RESULTS.md: no rejection among 28,083 real documents long enough to be
judged, in 9 languages and code).

In classical Chinese nearly every word is one character, so its pairs repeat hardly more often than
chance: ten Tang poems (tests/fixtures/classical_zh.jsonl) fail both pair tests. For text whose
letters are at least `MIN_HAN_SHARE` Han, `han_reuse` therefore asks what the pairs cannot: whether
its characters repeat as a uniform draw from an everyday set would (the Han junk the rule exists
for: random characters of GB 2312 level 1, of the other national sets or of the whole block) or far
more often, as language does, classical included (不 人 山 之 而 recur). A text whose characters
repeat `MIN_HAN_REUSE` standard deviations or more above a uniform draw from GB 2312 level 1 is
not `junk:random_letters`. What this costs: Han letters drawn independently with natural
frequencies (shuffled Chinese) are kept too, since no unigram test can tell them from language; a
text that repeats no character at all, the Thousand Character Classic, is still rejected.

A fifth score, `misspelt` (with `spelling_checked`), catches random Thai and Devanagari too short
for the pair test (`MIN_LETTER_PAIRS`): their vowel signs and tone marks land where the script's
spelling never writes them (after another vowel, at the start of a word), which real text does at
most once per document (a typo). It rejects as `junk:random_letters` too.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

import regex

from llmdata.reasons import Junk

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
#: at least this many adjacent-letter pairs before letter_dependence can reject a text
MIN_LETTER_PAIRS = 170
#: letter_dependence at or above this rejects a text as `junk:random_letters`
MAX_LETTER_DEPENDENCE = 0.92
#: ... and letter_repeat_ratio at or below this (pairs repeat at most three times as often as chance)
MAX_LETTER_REPEAT_RATIO = 3.0
#: seeded permutations averaged for letter_dependence's expected number of distinct pairs
SHUFFLES = 4
#: Han text is kept from `junk:random_letters` when Han letters are at least this share of its letters ...
MIN_HAN_SHARE = 0.5
#: ... and its Han characters repeat at least this many standard deviations more often than a
#: uniform draw from GB 2312 level 1 (`han_reuse`)
MIN_HAN_REUSE = 8.0
#: size of GB 2312 level 1, the smallest national set of everyday hanzi: the null of `han_reuse`
GB2312_LEVEL1 = 3755
#: Thai or Devanagari marks in sequences their spelling never writes (`misspelt`): at least this
#: many, and at least this share of the marks checked, reject a text as random letters
MIN_MISSPELT = 3
MIN_MISSPELT_RATIO = 0.03

# Thai character classes of WTT 2.0's input sequence check (Thai API Consortium, 1991; the table of
# GTK's Thai input method, gtk/gtkimcontextthai.c): consonants, above/below vowels (AV, BV), tone
# marks and thanthakhat (TONE, AD1), the other marks (maitaikhu, nikhahit, yamakkan), leading vowels (LV).
_THAI_CONSONANTS = frozenset(chr(c) for c in range(0x0E01, 0x0E2F))
_THAI_AV_BV = frozenset(chr(c) for c in [0x0E31, *range(0x0E34, 0x0E3B)])
_THAI_TONES = frozenset(chr(c) for c in range(0x0E48, 0x0E4D))  # mai ek .. mai chattawa, thanthakhat
_THAI_OTHER_MARKS = frozenset("\u0e47\u0e4d\u0e4e")
_THAI_LEADING = frozenset(chr(c) for c in range(0x0E40, 0x0E45))
# Devanagari consonants (with the nukta forms and the additions for other languages) and the signs
# that must follow one: dependent vowel signs and virama.
_DEVA_CONSONANTS = frozenset(chr(c) for c in [*range(0x0915, 0x093A), *range(0x0958, 0x0960), *range(0x0978, 0x0980)])
_DEVA_SIGNS = frozenset(chr(c) for c in [0x093A, 0x093B, *range(0x093E, 0x0950), 0x0955, 0x0956, 0x0957, 0x0962, 0x0963])
_CHECKED_SET = _THAI_AV_BV | _THAI_TONES | _THAI_OTHER_MARKS | _THAI_LEADING | _DEVA_SIGNS
_MARKS = "".join(sorted(_CHECKED_SET - _THAI_LEADING))
_CHECKED = regex.compile("[" + "".join(sorted(_CHECKED_SET)) + "]")
_LETTER_RUN = regex.compile(r"[\p{L}\p{M}]+")
# The same patterns for ASCII text, where \p{L} is [A-Za-z] and \p{M} is empty, in the stdlib engine
# (several times faster than `regex` on ASCII), and bytes.translate of every ASCII non-letter to a space.
_ASCII_LETTER_RUN = re.compile(r"[A-Za-z]+")
_ASCII_NON_LETTERS_TO_SPACE = bytes(c if c < 128 and chr(c).isalpha() else 32 for c in range(256))
_CJK = regex.compile(r"[\p{Han}\p{Hangul}]")
_HAN_LETTER = regex.compile(r"(?=\p{L})\p{Han}")  # not the radicals (⺀: So) nor 〇 (Nl) of the Han script
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


def letter_dependence(text: str) -> tuple[float, float, int]:
    """(distinct ratio, repeat ratio, number of pairs) of the adjacent-letter pairs in a sample of
    the text (start and middle, `SAMPLE_CHARS`), against `SHUFFLES` seeded permutations of the same
    letters over the same runs (the null hypothesis: independent letters, this text's frequencies).

    distinct ratio = distinct pairs / their mean under the permutations; repeat ratio = (pairs
    that repeat an earlier pair + 1) / (their mean under the permutations + 1). Both are about 1.0
    for letters drawn independently (from any alphabet, with any frequencies). Language has fewer
    distinct pairs (the ratio that separates small alphabets) and repeats its pairs more often (the
    ratio that separates large ones: in 200 Chinese characters almost every pair is distinct, but
    words recur 5-40 times more often than chance). Letters are \\p{L} and \\p{M} (Thai and
    Devanagari vowel signs count), case-folded; a pair is two adjacent letters of one run (a word,
    or a spaceless stretch of Han, kana or Thai). (1.0, 1.0, 0) without any pair. Deterministic.
    """
    sample = _sample(text).lower()
    runs = (_ASCII_LETTER_RUN if sample.isascii() else _LETTER_RUN).findall(sample)
    letters = "".join(runs)
    if len(letters) < 2:
        return 1.0, 1.0, 0
    import numpy as np  # llmdata imports nothing heavy at module top

    codes = np.frombuffer(letters.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    valid = np.ones(len(codes) - 1, dtype=bool)
    ends = np.cumsum([len(r) for r in runs])[:-1] - 1  # last letter of each run but the final one
    valid[ends] = False
    n_pairs = int(valid.sum())
    if n_pairs == 0:
        return 1.0, 1.0, 0

    def distinct(c: "np.ndarray") -> int:  # len(np.unique(pairs)), by a sort (4x faster at this size)
        pairs = ((c[:-1] << np.uint64(21)) | c[1:])[valid]
        pairs.sort()
        return 1 + int(np.count_nonzero(pairs[1:] != pairs[:-1]))  # n_pairs >= 1

    rng = np.random.default_rng(0)
    expected = sum(distinct(rng.permutation(codes)) for _ in range(SHUFFLES)) / SHUFFLES
    observed = distinct(codes)
    return observed / expected, (n_pairs - observed + 1) / (n_pairs - expected + 1), n_pairs


def han_reuse(text: str) -> tuple[float, float]:
    """(z, share): how far more often the Han characters of a sample of the text (start and middle,
    `SAMPLE_CHARS`) repeat than N characters drawn uniformly from GB 2312 level 1 would, in
    standard deviations, and the Han share of the sample's letters (\\p{L}, \\p{M}).

    Repeats R = N - D (N Han characters, D distinct). For N draws from K equally likely characters
    (the occupancy or birthday problem; Johnson & Kotz, "Urn Models and Their Application", 1977,
    ch. 3) E[D] = K(1 - (1 - 1/K)^N) and Var[D] = K(1 - 1/K)^N + K(K - 1)(1 - 2/K)^N - K^2(1 - 1/K)^2N;
    z = (R - E[R]) / sd with K = `GB2312_LEVEL1` (3,755). A uniform draw from that set or from any
    larger one (Big5's 5,401 frequent hanzi, the whole CJK block) has z of about 0 or below (at most
    2.5 in 200 random GB 2312 level 1 documents); real Chinese, classical included, reuses its
    frequent characters (不 人 之 而 山 月 ...) far more: 22-23 for the files of 10 and 11 Tang poems
    of tests/fixtures/classical_zh.jsonl, 22.6 and more for this machine's Chinese documents
    (bench/junk_random_letters.py, bench/RESULTS.md). Text that never repeats a character (the
    Thousand Character Classic) scores below 0, like random text.
    (0.0, 0.0) without Han. Deterministic.
    """
    if text.isascii():
        return 0.0, 0.0
    sample = _sample(text)
    han = _HAN_LETTER.findall(sample)
    if not han:
        return 0.0, 0.0
    n_letters = sum(len(r) for r in _LETTER_RUN.findall(sample))
    n, k = len(han), GB2312_LEVEL1
    q1, q2 = (1 - 1 / k) ** n, (1 - 2 / k) ** n
    expected_repeats = n - k * (1 - q1)
    sd = math.sqrt(max(k * q1 + k * (k - 1) * q2 - k * k * q1 * q1, 0.0)) or 1.0  # n = 1: no variance
    return (n - len(set(han)) - expected_repeats) / sd, n / n_letters


def _same_block(a: str, b: str) -> bool:
    """Whether `a` is a character of `b`'s block (Thai U+0E00-0E7F or Devanagari U+0900-097F)."""
    return ord(a) >> 7 == ord(b) >> 7


def misspelt(text: str) -> tuple[int, int]:
    """(characters in a sequence the script's spelling never writes, characters checked) in a
    sample of the text (start and middle, `SAMPLE_CHARS`), for Thai and Devanagari.

    Thai, the strict core of WTT 2.0's input sequence check (the table Thai keyboards and GTK's Thai
    input method, gtk/gtkimcontextthai.c, use to refuse a keystroke): an above or below vowel,
    maitaikhu or yamakkan must follow a consonant; a tone mark or thanthakhat a consonant or an
    above/below vowel (or nikhahit); nikhahit a consonant, an above/below vowel or a tone mark (NFKC
    writes sara am as nikhahit + sara aa); a leading vowel (เ แ โ ใ ไ) must not be followed by a
    Thai character other than a consonant. Devanagari (the Unicode Standard, ch. 12.1: a dependent
    vowel sign or virama follows the consonant it modifies): a dependent vowel sign or virama must
    follow a consonant or nukta. Only a mark inside a word is judged (a character of its own block
    before or after it): a mark standing alone between spaces or punctuation (a character table, a
    text about the script) misspells no word; an "_" mnemonic is no character of the script. Real text breaks these rules at most once per
    document (a typo) on this machine (375 Thai and 385 Hindi documents: 0 and at most 1); letters
    drawn at random from those blocks break them in 4-50% of the characters checked
    (bench/junk_random_letters.py). (0, 0) without such characters. Deterministic.
    """
    if text.isascii() or not _CHECKED.search(text):  # every checked character is non-ASCII
        return 0, 0
    n = SAMPLE_CHARS
    # the middle slice may start inside a cluster: its leading marks have lost their consonant
    s = text if len(text) <= n else text[: n // 2] + "\n" + text[len(text) // 2 : len(text) // 2 + n - n // 2].lstrip(
        _MARKS)
    bad = checked = 0
    prev = " "
    for i, ch in enumerate(s):
        if ch in _CHECKED_SET and (_same_block(prev, ch) or _same_block(s[i + 1] if i + 1 < len(s) else " ", ch)):
            checked += 1
            if ch in _THAI_LEADING:
                nxt = s[i + 1] if i + 1 < len(s) else " "
                bad += "\u0e01" <= nxt <= "\u0e5b" and nxt not in _THAI_CONSONANTS
            elif ch in _THAI_TONES:
                bad += not (prev in _THAI_CONSONANTS or prev in _THAI_AV_BV or prev == "\u0e4d")
            elif ch == "\u0e4d":
                bad += not (prev in _THAI_CONSONANTS or prev in _THAI_AV_BV or prev in _THAI_TONES)
            elif ch in _DEVA_SIGNS:
                bad += not (prev in _DEVA_CONSONANTS or prev == "\u093c")
            else:  # Thai above/below vowels, maitaikhu, yamakkan
                bad += prev not in _THAI_CONSONANTS
        prev = ch
    return bad, checked


def char_entropy(text: str) -> float:
    """Conditional entropy (bits) of the next letter given the current one, over the first
    ENTROPY_CHARS characters of the text with letters case-folded and every run of non-letters
    one space; 0.0 for fewer than 50 such characters."""
    head = text[: ENTROPY_CHARS * 3].lower()
    if head.isascii():  # the same string: ASCII letters kept, each run of other characters one space
        folded = " ".join(head.encode("ascii").translate(_ASCII_NON_LETTERS_TO_SPACE).decode("ascii").split())
    else:
        folded = _NOT_LETTERS.sub(" ", head).strip()
    folded = folded[:ENTROPY_CHARS]
    if len(folded) < 50:
        return 0.0
    n = len(folded) - 1

    def entropy(counts: Counter) -> float:
        return -sum(c / n * math.log2(c / n) for c in counts.values())

    return max(entropy(Counter(zip(folded, folded[1:]))) - entropy(Counter(folded[:-1])), 0.0)


def junk_scores(raw: str, text: str) -> dict[str, float]:
    """The junk rules' scores of a document: `rare_char_ratio` and `cjk_letters` of the normalized
    text, `mojibake_ratio` and `mojibake_badness` of the raw text, `letter_dependence`,
    `letter_repeat_ratio`, `letter_pairs`, `misspelt`, `spelling_checked`, `han_reuse` (signed, in
    standard deviations) and `han_share` of the normalized text (module docstring).
    `char_entropy` is one of llmdata.features' document features."""
    rare, n_cjk = rare_char_ratio(text)
    moji, bad = mojibake_score(raw)
    dep, rep, n_pairs = letter_dependence(text)
    spell_bad, spell_checked = misspelt(text)
    reuse, han_share = han_reuse(text)
    return {"rare_char_ratio": rare, "cjk_letters": float(n_cjk), "mojibake_ratio": moji, "mojibake_badness": float(bad),
            "letter_dependence": dep, "letter_repeat_ratio": rep, "letter_pairs": float(n_pairs),
            "misspelt": float(spell_bad), "spelling_checked": float(spell_checked), "han_reuse": reuse, "han_share": han_share}


def junk_reason(scores: dict[str, float]) -> str | None:
    """`junk:mojibake`, `junk:random_chars`, `junk:random_letters` or None, from `junk_scores`'
    values (a missing score, e.g. in records scored before it existed, never rejects). Han-dominant
    text whose characters repeat far more than a uniform draw would (`han_share` >= MIN_HAN_SHARE,
    `han_reuse` >= MIN_HAN_REUSE) is never `junk:random_letters` by the pair test. Random Thai
    or Devanagari too short for letter_dependence is `junk:random_letters` when its marks break the
    script's spelling (`misspelt`: at least MIN_MISSPELT, and MIN_MISSPELT_RATIO of those checked)."""
    if scores["mojibake_ratio"] >= MAX_MOJIBAKE_RATIO and scores["mojibake_badness"] >= MIN_BADNESS:
        return Junk.MOJIBAKE
    if scores["cjk_letters"] >= MIN_CJK_LETTERS and scores["rare_char_ratio"] > MAX_RARE_CHAR_RATIO:
        return Junk.RANDOM_CHARS
    if (scores.get("letter_pairs", 0.0) >= MIN_LETTER_PAIRS and scores.get("letter_dependence", 0.0) >= MAX_LETTER_DEPENDENCE
            and scores.get("letter_repeat_ratio", math.inf) <= MAX_LETTER_REPEAT_RATIO
            and not (scores.get("han_share", 0.0) >= MIN_HAN_SHARE and scores.get("han_reuse", 0.0) >= MIN_HAN_REUSE)):
        return Junk.RANDOM_LETTERS
    bad, checked = scores.get("misspelt", 0.0), scores.get("spelling_checked", 0.0)
    if bad >= MIN_MISSPELT and bad >= MIN_MISSPELT_RATIO * checked:
        return Junk.RANDOM_LETTERS
    return None
