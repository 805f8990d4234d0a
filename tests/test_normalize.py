"""Each normalization step on known inputs; the composition is idempotent and total on Unicode."""
import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmdata.normalize import (
    NormalizeOptions,
    Normalizer,
    NormalizerUnavailable,
    collapse_spaces,
    limit_blank_lines,
    make_word_mapper,
    nfc,
    nfkc,
    remove_invisible,
    remove_punctuation,
    replace_chars,
    replace_words,
    strip_trailing,
    wordnet_available,
)


def test_remove_invisible():
    assert remove_invisible("a\u200bb\u00adc\ufeffd\x00e\x07f\u2060g") == "abcdefg"
    assert remove_invisible("a\r\nb\rc\x0cd\x0be") == "a\nb\nc\nd\ne"
    assert remove_invisible("tab\tand\nnewline") == "tab\tand\nnewline"
    assert remove_invisible("bidi\u202eoverride\u2066iso\u2069\u200emark\u2028sep") == "bidioverrideisomark\nsep"


def test_remove_invisible_keeps_joiners_and_tags():
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "mi-khaham" with its ZWNJ
    malayalam = "\u0d28\u0d4d\u200d"  # chillu spelled with a ZWJ
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one emoji through ZWJ
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # tag sequence
    for text in (persian, malayalam, family, england, "\u0600\u0661"):
        assert remove_invisible(text) == text
        assert Normalizer()(text) == text


def test_has_visible():
    from llmdata.normalize import has_visible

    assert not has_visible("\u200d\u200c \ufe0f\n\t\U000e0067")
    assert has_visible("\u200d\u0645") and has_visible("\u3002") and has_visible("\u0301")


def test_nfc_and_nfkc():
    assert nfc("e\u0301") == "\u00e9"
    assert nfc("x\u00b2 \uff0c\ufb01") == "x\u00b2 \uff0c\ufb01"  # compatibility characters stay
    assert nfkc("\uff21\uff22\uff23") == "ABC"  # full-width
    assert nfkc("\ufb01nd") == "find"  # ligature
    assert nfkc("x\u00b2") == "x2"
    assert nfkc("e\u0301") == "\u00e9"


def test_default_keeps_meaning_nfkc_is_opt_in():
    text = "x\u00b2 + y\u00b2 = z\u00b2, H\u2082O, \u2460 \ufb01"
    assert Normalizer()(text) == text
    assert Normalizer(NormalizeOptions(nfkc=True))(text) == "x2 + y2 = z2, H2O, 1 fi"
    chinese = "\u4f60\u597d\uff0c\u4e16\u754c\uff1a\uff08\u6d4b\u8bd5\uff09\uff01\u662f\u5417\uff1f\u597d\u3002\u4e00\u3001\u4e8c\uff1b"
    assert Normalizer()(chinese) == chinese  # all full-width punctuation stays, not half of it
    assert Normalizer()("\u3000\u3000\u7b2c\u4e00\u6bb5\u3002") == "\u3000\u3000\u7b2c\u4e00\u6bb5\u3002"
    assert Normalizer()("e\u0301t\u00e9") == "\u00e9t\u00e9"  # NFC: one spelling of the same text


def test_collapse_spaces_keeps_indentation():
    assert collapse_spaces("a   b\u00a0\u00a0c") == "a b c"
    assert collapse_spaces("def f():\n    return  1") == "def f():\n    return 1"
    assert collapse_spaces("\u3000x") == "\u3000x"  # the ideographic space is CJK typesetting
    assert collapse_spaces("a\u2009\u2009b") == "a b"


def test_trailing_and_blank_lines():
    assert strip_trailing("a  \nb\t\n\n") == "a\nb"
    assert limit_blank_lines("a\n\n\n\nb", 1) == "a\n\nb"
    assert limit_blank_lines("a\n \n\t\n\nb", 0) == "a\nb"
    assert limit_blank_lines("a\n\nb", 1) == "a\n\nb"


def test_punctuation_and_replacements():
    assert remove_punctuation("Hello, world! (x)") == "Hello  world   x "
    assert replace_chars("\u201cquoted\u201d \u2014 dash\u2026", {"\u201c": '"', "\u201d": '"', "\u2014": "-", "\u2026": "..."}) == '"quoted" - dash...'
    assert replace_words("Use e.g. the approx value", {"e.g.": "for example", "approx": "approximately"}) == "Use for example the approximately value"
    assert replace_words("COLOUR colour colourful", {"colour": "color"}) == "color color colourful"
    assert replace_words("COLOUR colour", {"colour": "color"}, case_sensitive=True) == "COLOUR color"


def test_stemming():
    n = Normalizer(NormalizeOptions(lowercase=True, stem="porter"))
    assert n("Running runners ran quickly") == "run runner ran quickli"
    s = Normalizer(NormalizeOptions(stem="snowball"))
    assert s("generously") == "generous"


def test_wordnet_is_refused_clearly_when_its_data_is_missing():
    if wordnet_available():
        assert make_word_mapper("wordnet")("geese") == "goose"
    else:
        with pytest.raises(NormalizerUnavailable, match="wordnet"):
            Normalizer(NormalizeOptions(stem="wordnet"))


def test_defaults_are_faithful():
    text = "Def Foo(x):\n    Return X, Y!"
    assert Normalizer()(text) == text


FAITHFUL = Normalizer()
AGGRESSIVE = Normalizer(NormalizeOptions(lowercase=True, remove_punctuation=True, replace_special=True, word_map={"approx": "approximately"}))


@given(st.text(max_size=400))
@settings(max_examples=500)
def test_default_normalization_is_idempotent(text):
    once = FAITHFUL(text)
    assert FAITHFUL(once) == once


@given(st.text(max_size=400))
@settings(max_examples=500)
def test_aggressive_normalization_is_idempotent(text):
    once = AGGRESSIVE(text)
    assert AGGRESSIVE(once) == once


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
@settings(max_examples=200)
def test_stemming_never_raises(text):
    Normalizer(NormalizeOptions(stem="porter"))(text)


NFKC_TEXT = Normalizer(NormalizeOptions(nfkc=True))


@given(st.text(max_size=400))
@settings(max_examples=300)
def test_nfkc_normalization_is_idempotent(text):
    once = NFKC_TEXT(text)
    assert NFKC_TEXT(once) == once


# Characters whose change alters meaning, and words built from them: the default must keep them all.
_MEANINGFUL = st.sampled_from(
    # (not U+2126 OHM or U+212B ANGSTROM: canonical singletons, NFC maps them to Omega and A-ring)
    list("\u00b2\u00b3\u00b9\u2070\u2074\u2075\u207f\u2080\u2081\u2082\u2083\u00bd\u2153\u2460\u2461\u2122\ufb01\ufb02")  # super/subscripts, fractions, circled, ligatures
    + list("\uff0c\u3002\u3001\uff1a\uff1b\uff08\uff09\uff01\uff1f\u300c\u300d\u300e\u300f\u3010\u3011\uff5e\u30fb\uff0e\uff21\uff41\uff10\u3000")  # full-width
    + ["\u0645\u06cc\u200c\u0634\u0648\u062f", "\u0d28\u0d4d\u200d", "\u0d9a\u0dca\u200d\u0dbb",  # ZWNJ/ZWJ in Persian, Malayalam, Sinhala
       "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f3f3\ufe0f\u200d\U0001f308", "\u2764\ufe0f"]  # emoji ZWJ sequences
)
_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF) | st.characters(min_codepoint=0x3041, max_codepoint=0x3096) \
    | st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA) | st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
_LATIN = st.sampled_from(list("abcxyzXYZ019+-=<>()"))


@given(st.lists(_MEANINGFUL | _CJK | _LATIN, min_size=1, max_size=60))
@settings(max_examples=400)
def test_default_never_changes_meaningful_characters(parts):
    text = "".join(parts)
    assert Normalizer()(text) == text


# The Unicode forms the stdlib patterns of remove_invisible and collapse_spaces are written from.
_INVISIBLE_UNICODE = regex.compile(r"[\p{Cc}\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u206f\ufeff--[\t\n]]", regex.V1)
_HSPACE_RUN_UNICODE = regex.compile(r"(?<=\S)[^\S\n\u3000]{2,}(?=\S)")
_SPACES = st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2009\u3000\u2028\u200b\ufeffa.中\u0301\x00\x7f\x9f\u00ad\u202e\u2066\u200d")))


@settings(max_examples=500)
@given(st.one_of(_SPACES, st.text()))
@example("a  \rb\r\r c").via("a carriage return inside a run")
@example("a \x0b\x0cb  \x1c  c\x85\x85d").via("vertical tab, form feed, NEL")
@example("x \u3000 y\u00a0\u2009z\t\tw").via("ideographic and exotic spaces")
def test_stdlib_patterns_match_their_unicode_forms(text):
    assert remove_invisible(text) == _INVISIBLE_UNICODE.sub("", regex.sub(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]", "\n", text))
    assert collapse_spaces(text) == _collapse_spaces_unicode(text)


def _collapse_spaces_unicode(text: str) -> str:
    """collapse_spaces with the Unicode pattern (its form before the stdlib one)."""
    if not text.isascii() or any(c in text for c in "\x0b\x0c\x1c\x1d\x1e\x1f"):
        text = regex.sub(r"[^\S\n\t \u3000]", " ", text)
    if "  " not in text and "\t" not in text:
        return text
    return _HSPACE_RUN_UNICODE.sub(" ", text)


CODE = ('import sys\n\nFMT = "  --%-*s  %s"   # two spaces inside the literal\n\n\n\ndef main(argv):\n'
        '    x  = 1      # aligned\n    y  = 22     # aligned\n    return FMT % (x, "a  b") \n')


def test_code_keeps_its_layout_prose_does_not():
    """Spaces inside a string literal, aligned comments, blank lines and trailing spaces are the
    program's; a paragraph of prose with the same spacing is tidied."""
    assert Normalizer()(CODE) == CODE
    prose = "The  quick   brown fox.  \n\n\n\nIt jumps.  "
    assert Normalizer()(prose) == "The quick brown fox.\n\nIt jumps."
    collapsed = Normalizer(NormalizeOptions(code_layout="normalize"))(CODE)
    assert '"  --%-*s  %s"' not in collapsed and '" --%-*s %s"' in collapsed


_CODE_LINES = st.lists(st.sampled_from(["x = 1", "def f(a):", "    return a", "import os", "print( 'a  b' )", "",
                                        "y  =  2  ", "The  end.", "\t", "  # note  "]), min_size=1, max_size=12)


@given(_CODE_LINES.map("\n".join))
def test_normalization_is_idempotent_on_code_like_text(text):
    once = Normalizer()(text)
    assert Normalizer()(once) == once
