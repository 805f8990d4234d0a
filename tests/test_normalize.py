"""Each normalization step on known inputs; the composition is idempotent and total on Unicode."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.normalize import (
    NormalizeOptions,
    Normalizer,
    NormalizerUnavailable,
    collapse_spaces,
    limit_blank_lines,
    make_word_mapper,
    nfkc,
    remove_invisible,
    remove_punctuation,
    replace_chars,
    replace_words,
    strip_trailing,
    wordnet_available,
)


def test_remove_invisible():
    assert remove_invisible("a\u200bb\u200dc\ufeffd\x00e\x07f") == "abcdef"
    assert remove_invisible("a\r\nb\rc") == "a\nb\nc"
    assert remove_invisible("tab\tand\nnewline") == "tab\tand\nnewline"
    assert remove_invisible("bidi\u202eoverride\u2028sep") == "bidioverridesep"


def test_nfkc():
    assert nfkc("\uff21\uff22\uff23") == "ABC"  # full-width
    assert nfkc("\ufb01nd") == "find"  # ligature
    assert nfkc("e\u0301") == "\u00e9"


def test_collapse_spaces_keeps_indentation():
    assert collapse_spaces("a   b\u00a0\u00a0c") == "a b c"
    assert collapse_spaces("def f():\n    return  1") == "def f():\n    return 1"
    assert collapse_spaces("\u3000x") == " x"


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
