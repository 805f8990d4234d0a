"""The multilingual benchmark's planted noise and its scoring (bench/multilingual_corpus.py,
bench/multilingual_eval.py), on texts written here: the corpus itself needs this machine's
/usr/share files, which tests must not."""
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.multilingual_corpus import ALPHABET, flip_operator, mojibake, one_char_edit, random_script_text
from bench.multilingual_eval import score
from llmdata.scripts import dominant_script

SCRIPT = {"en": "latin", "zh": "han", "ja": "kana", "ko": "hangul", "th": "thai", "ar": "arabic", "he": "hebrew", "hi": "devanagari", "ru": "cyrillic"}


def test_random_script_junk_is_in_its_script_with_its_line_ends():
    rng = random.Random(0)
    for lang, script in SCRIPT.items():
        text = random_script_text(rng, lang)
        assert dominant_script(text) == script
        end = ALPHABET[lang][1]
        assert all(line.endswith(end) for line in text.split("\n"))


@given(st.text(min_size=1, max_size=200))
@settings(max_examples=200, deadline=None)
def test_mojibake_is_the_utf8_bytes_read_as_cp1252(text):
    garbled = mojibake(text)
    assert bytes(ord(c) if ord(c) < 256 else c.encode("cp1252")[0] for c in garbled) == text.encode("utf-8")
    assert text.isascii() == (garbled == text)


def test_one_char_edit_changes_one_letter_of_the_same_script():
    rng = random.Random(1)
    text = "数据清洗是训练语言模型的第一步。我们在读取文件时检查每一行的编码，并把无法解析的记录放入隔离区。"
    for _ in range(20):
        edited = one_char_edit(text, rng, "han")
        diff = [(a, b) for a, b in zip(text, edited) if a != b]
        assert len(edited) == len(text) and len(diff) == 1
        assert dominant_script(diff[0][1]) == "han"


def test_flip_operator_changes_one_operator_outside_the_docstring():
    code = 'def f(a, b):\n    """Return a - b if a < b."""\n    if a < b:\n        return a + b\n    return b\n'
    flipped = flip_operator(code)
    assert flipped == code.replace("if a < b:", "if a > b:")
    assert flip_operator("def g():\n    return None\n") is None


def test_score_counts_what_the_issue_asks():
    labels = [
        {"id": "zh-0", "label": "good", "lang": "zh", "kind": "good"},
        {"id": "zh-1", "label": "good", "lang": "zh", "kind": "good"},
        {"id": "dup-edit-zh-00", "label": "good:near_dup", "lang": "zh", "kind": "good", "duplicate_of": "zh-0", "edit": "one_char"},
        {"id": "junk-random-zh-00", "label": "junk:random_script", "lang": "zh", "kind": "junk"},
        {"id": "junk-random-zh-01", "label": "junk:random_script", "lang": "zh", "kind": "junk"},
        {"id": "op-00-a", "label": "good:operator_pair", "lang": "code", "kind": "good", "distinct_from": "op-00-b"},
        {"id": "op-00-b", "label": "good:operator_pair", "lang": "code", "kind": "good", "distinct_from": "op-00-a"},
        {"id": "tmpl-en-0", "label": "good:template", "lang": "en", "kind": "good", "template": "en"},
        {"id": "tmpl-en-1", "label": "good:template", "lang": "en", "kind": "good", "template": "en"},
    ]
    texts = {lab["id"]: lab["id"] for lab in labels}
    texts["op-00-a"], texts["op-00-b"] = "x < y", "x > y"
    clean_kept = [{"id": i} for i in ("zh-0", "dup-edit-zh-00", "junk-random-zh-01", "op-00-a", "op-00-b", "tmpl-en-0", "tmpl-en-1")]
    kept = [{"id": "zh-0", "cluster": "c1"}, {"id": "op-00-a", "cluster": "c2"}, {"id": "tmpl-en-0"}, {"id": "tmpl-en-1"}, {"id": "junk-random-zh-01"}]
    removed = [
        {"id": "dup-edit-zh-00", "cluster": "c1", "duplicate_of": "zh-0", "dup_kind": "near"},
        {"id": "op-00-b", "cluster": "c2", "duplicate_of": "op-00-a", "dup_kind": "exact"},
    ]
    s = score(labels, texts, clean_kept, kept, removed)
    assert s["rows"]["zh"]["good"] == (2, 3)  # zh-1 rejected by clean
    assert s["rows"]["zh"]["junk"] == (1, 2)
    assert s["exact"][:2] == (0, 1) and s["exact"][2] == [("op-00-b", "op-00-a")]  # "x < y" is not "x > y"
    assert s["exact"][3] == {"different": 1}
    assert s["pairs"][:3] == (1, 1, 1) and s["pairs"][4] == [("op-00-a", "op-00-b")]
    assert s["near"]["zh"] == (1, 1, 1)
    assert s["templates"][:3] == (0, 2, 2)


def test_exact_precision_is_measured_at_the_configured_exact_level():
    """A case-only merge of prose is right at the default exact level (case folded) and counted as
    case-only; the same merge of two code records is wrong (code keeps its case)."""
    labels = [{"id": i, "label": "good", "lang": "en", "kind": "good"} for i in ("p1", "p2", "w1", "w2", "c1", "c2")]
    texts = {"p1": "The unit started.", "p2": "The Unit started.", "w1": "a  b", "w2": "a b",
             "c1": "x = Foo()", "c2": "x = foo()"}
    kept = [{"id": "p1", "lang": "en"}, {"id": "w1", "lang": "en"}, {"id": "c1", "lang": "code"}]
    removed = [{"id": "p2", "lang": "en", "duplicate_of": "p1", "dup_kind": "exact"},
               {"id": "w2", "lang": "en", "duplicate_of": "w1", "dup_kind": "exact"},
               {"id": "c2", "lang": "code", "duplicate_of": "c1", "dup_kind": "exact"}]
    s = score(labels, texts, [{"id": i} for i in texts], kept, removed)
    assert s["exact"][:3] == (2, 3, [("c2", "c1")])
    assert s["exact"][3] == {"case only": 2, "whitespace only": 1}
