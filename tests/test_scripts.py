"""Script detection: the one place that says which writing system a text is in."""
from collections import Counter

import regex
from hypothesis import given, strategies as st

from llmdata.scripts import NO_SPACE_SCRIPTS, dominant_script, script_counts, spaceless_share


def test_scripts_of_real_sentences():
    cases = {
        "The quick brown fox": "latin",
        "系统启动失败，请检查日志。": "han",
        "これは日本語の文章です。漢字も使います。": "kana",
        "ระบบเริ่มทำงานแล้ว": "thai",
        "시스템이 시작되었습니다": "hangul",
        "Система запущена": "cyrillic",
        "تم تشغيل النظام": "arabic",
        "המערכת הופעלה": "hebrew",
        "सिस्टम शुरू हो गया": "devanagari",
        "x² + y² = 42 !": "latin",
        "12345 !!! ...": "none",
    }
    for text, script in cases.items():
        assert dominant_script(text) == script, text


def test_kanji_heavy_japanese_is_not_chinese():
    # 10 Han letters, 3 kana: more than a fifth of the Han+kana letters are kana
    assert dominant_script("東京都渋谷区の天気予報です") == "kana"
    assert dominant_script("东京都涩谷区天气预报") == "han"


def test_a_letter_of_an_unlisted_script_does_not_swallow_the_letters_after_it():
    assert script_counts("ཀ中文éб") == Counter({"other": 1, "han": 2, "latin": 1, "cyrillic": 1})


def test_counts_only_letters():
    assert script_counts("a1 b2, 中。") == Counter({"latin": 2, "han": 1})
    assert spaceless_share(script_counts("ab中文")) == 0.5
    assert spaceless_share(Counter()) == 0.0
    assert {"han", "kana", "thai"} <= NO_SPACE_SCRIPTS and "hangul" not in NO_SPACE_SCRIPTS


@given(st.text())
def test_every_letter_is_counted_once(text):
    counts = script_counts(text)
    letters = regex.findall(r"(?![\p{Script=Common}\p{Script=Inherited}])\p{L}", text)
    assert sum(counts.values()) == len(letters)
    assert dominant_script(text) in {*counts, "kana", "none"}


def test_words_per_script():
    from llmdata.scripts import words
    assert words("def foo_bar(x): return x+1") == ["def", "foo_bar", "x", "return", "x", "1"]
    assert words("系统启动失败，请检查日志。") == list("系统启动失败请检查日志")
    assert words("コーヒーを飲む") == ["コー", "ヒー", "を", "飲", "む"]
    assert words("ระบบเริ่มทำงานแล้ว ok") == ["ระบบ", "เริ่ม", "ทำงาน", "แล้ว", "ok"]
    assert words("Привет, мир! café") == ["Привет", "мир", "café"]
    assert words("中文English混合") == ["中", "文", "English", "混", "合"]


@given(st.text())
def test_words_are_pieces_of_the_text_in_order(text):
    from llmdata.scripts import words
    pos = 0
    for w in words(text):
        assert w.strip() == w and w
        found = text.find(w, pos)
        assert found >= 0
        pos = found + len(w)


def test_thai_mnemonic_underscores_do_not_split_words():
    """GTK/Qt UI strings mark the accelerator letter with "_": inside Thai it is no word break, so
    the label's words are those of the label without it; identifiers keep their underscores."""
    from llmdata.scripts import words

    assert words("เลิ_กเชื่อมต่อ") == words("เลิกเชื่อมต่อ")
    assert words("_แบบอักษร\nฮาร์_ดดิสก์") == words("แบบอักษร\nฮาร์ดดิสก์")
    assert words("foo_bar ภาษาไทย") == ["foo_bar", *words("ภาษาไทย")]


_WORDISH = st.text(alphabet=st.sampled_from(list("ab Z09_-.'\n\u00e9\u00df\u0130\u2019\u201c\u2014\u00b2\u0301\u200d\u200c"
                                                 "\u0915\u093e\u094d\u0410\u05d0\u0627\u064b\u0661")))


@given(st.one_of(_WORDISH, st.text()))
def test_words_fast_path_equals_the_unicode_pattern(text):
    """Without a spaceless script the words are `regex`'s \\w+ runs, whichever engine finds them
    (the stdlib's \\w differs on combining marks, ZWJ/ZWNJ and digits like ², so the fast path must
    see through those)."""
    from llmdata.scripts import words
    if not regex.search(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\u3005\u309d\u309e\u30fc"
                        r"\u30fd\u30fe\uff70]", text):
        assert words(text) == regex.findall(r"\w+", text)


def test_words_keeps_marks_and_joiners_inside_words():
    from llmdata.scripts import words
    assert words("नमस्ते दुनिया “ok”") == ["नमस्ते", "दुनिया", "ok"]  # vowel signs and virama: no stdlib \w
    assert words("می\u200cخواهم x²") == ["می\u200cخواهم", "x"]  # ZWNJ joins; ² is not regex's \w
    assert words("He said “don’t” — café") == ["He", "said", "don", "t", "café"]


def test_thai_words_with_icus_dictionary_split_multi_word_compounds():
    """PyThaiNLP's default word list holds compounds (สิ่งอำนวยความสะดวก "facility": thing, provide,
    NOM, convenient); ICU's BreakIterator dictionary lists their parts. The same text either way."""
    import pytest

    from llmdata.scripts import words

    text = "ค่าของสิ่งอำนวยความสะดวกมีการเปลี่ยนแปลง"
    assert words(text) == ["ค่า", "ของ", "สิ่งอำนวยความสะดวก", "มี", "การเปลี่ยนแปลง"]
    assert words(text, thai_dictionary="icu") == ["ค่า", "ของ", "สิ่ง", "อำนวย", "ความ", "สะดวก", "มี", "การ", "เปลี่ยนแปลง"]
    assert "".join(words(text, thai_dictionary="icu")) == text
    assert words("เลิ_กเชื่อมต่อ ok", thai_dictionary="icu") == words("เลิกเชื่อมต่อ ok", thai_dictionary="icu")
    with pytest.raises(ValueError, match="Thai dictionary 'orst'"):
        words("ระบบ", thai_dictionary="orst")


@given(st.text(alphabet=st.characters(min_codepoint=0x0E00, max_codepoint=0x0E7F) | st.sampled_from(" _a1\n")))
def test_thai_words_with_either_dictionary_are_the_text_in_order(text):
    """The dictionary decides only where a Thai run is cut: the same characters, no empty words."""
    from llmdata.scripts import words

    toks = words(text, thai_dictionary="icu")
    assert all(t and t.strip() == t for t in toks)
    assert "".join(toks) == "".join(words(text))


def test_whole_numbers_keep_a_number_one_word():
    """Digits joined by a separator that Unicode's word boundaries keep inside a number (UAX #29
    WB11/WB12) are one word: "0.0" is not two one-character words. Letters joined by "." or "'"
    stay apart (identifiers in code)."""
    from llmdata.scripts import words

    code = "r = y + 0.9468822170900693*i\nif r < 0.0: os.path.join(a, 3,000, 10.0.94.13) can't 1.5x"
    assert words(code) == ["r", "y", "0", "9468822170900693", "i", "if", "r", "0", "0", "os", "path", "join",
                           "a", "3", "000", "10", "0", "94", "13", "can", "t", "1", "5x"]
    assert words(code, whole_numbers=True) == ["r", "y", "0.9468822170900693", "i", "if", "r", "0.0", "os", "path",
                                               "join", "a", "3,000", "10.0.94.13", "can", "t", "1", "5x"]
    assert words("版本3.5，价格 1,299 元", whole_numbers=True) == ["版", "本", "3.5", "价", "格", "1,299", "元"]
    assert words("café 2.5 “x”", whole_numbers=True) == ["café", "2.5", "x"]
    assert words("ระบบ 1.0 แล้ว", whole_numbers=True, thai_dictionary="icu") == ["ระบบ", "1.0", "แล้ว"]


@given(st.text(alphabet=st.sampled_from("0123456789.,;' _ab\n١٬٫é中ระ")))
def test_whole_numbers_only_join_neighbouring_words(text):
    """Each word with `whole_numbers` is one or more consecutive words of the plain split, joined
    across number separators; ASCII text takes the fast pattern, which gives the Unicode one's words."""
    import regex as re_

    from llmdata import scripts

    joined = scripts.words(text, whole_numbers=True)
    assert [w for tok in joined for w in re_.findall(r"\w+", tok)] == scripts.words(text)
    if text.isascii():
        assert joined == scripts._NUMBER_OR_WORD.findall(text)
