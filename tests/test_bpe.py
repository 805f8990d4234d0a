"""Byte-level BPE: the incremental learner equals a naive one; min_frequency counts pairs; the
multilingual pre-tokenizer cuts CJK and Thai runs into short pieces; three encoders (the reference,
tiktoken, HF tokenizer.json) give the same ids on any text, for every built-in pattern."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.bpe import CJK_PIECE, HAN, PATTERNS, PretokenCounter, encode_reference, learn_merges, learn_merges_naive, pretokenize
from llmdata.sample_data import good_documents
from llmdata.tokenizer_io import BPETokenizer, load_hf


@pytest.fixture(scope="module")
def corpus_text():
    return "\n\n".join(d.text for d in good_documents()[:60])


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_incremental_learner_equals_naive(corpus_text, pattern):
    counts = Counter(pretokenize(corpus_text[:60_000], regex.compile(PATTERNS[pattern])))
    fast = learn_merges(counts, 700)
    assert fast.merges == learn_merges_naive(counts, 700)
    assert len(fast.merges) > 100


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(min_size=1, max_size=10).map(lambda b: bytes(98 + x % 3 for x in b)),
                       st.integers(1, 9), max_size=12))
def test_learner_equals_naive_on_repetitive_words(counts):
    """Words of two or three byte values ("bbbb", "bcbcb"): runs and overlapping occurrences,
    where updating only the pairs around each merge site is easiest to get wrong."""
    assert learn_merges(counts, 300).merges == learn_merges_naive(counts, 300)


SPACEY = st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000'sdmtlvre.,!?0123459aZé中文字のカナ한글กิ่น😀_-，。")),
                 max_size=80)


@pytest.mark.parametrize("name", sorted(PATTERNS))
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.one_of(st.text(max_size=60), SPACEY), max_size=5))
def test_counting_by_piece_equals_pretokenizing_whole_texts(name, texts):
    """The cut before spaces changes no pre-token, whatever the text: any Unicode, and runs of
    every kind of space, contractions, digits and punctuation around the cuts."""
    counter = PretokenCounter(PATTERNS[name])
    assert counter.by_piece
    for text in texts:
        counter.add(text)
    whole = Counter(t for text in texts for t in regex.findall(PATTERNS[name], text))
    assert counter.take() == whole
    assert len(counter) == 0 and counter.take() == Counter()


def test_a_pattern_of_ones_own_is_run_on_whole_texts():
    counter = PretokenCounter(r"\S+ \S+|\s+")  # matches across a space: cutting there would change it
    counter.add("ab cd ef")
    assert not counter.by_piece and counter.take() == Counter({"ab cd": 1, " ": 1})


def test_min_frequency_counts_pairs_not_pretokens():
    """HF BpeTrainer's meaning: "ab" is seen once in each of two pre-tokens that are each seen
    once, twice in all, so min_frequency=2 merges it; "xa" and "ya", seen once, are not merged."""
    counts = {b"xab": 1, b"yab": 1}
    assert learn_merges(counts, 300, min_frequency=2).merges == [(97, 98)]
    assert learn_merges_naive(counts, 300, min_frequency=2) == [(97, 98)]
    assert learn_merges(counts, 300, min_frequency=3).merges == []
    assert learn_merges({b"xab": 1, b"ycd": 1}, 300, min_frequency=2).merges == []  # each pair seen once
    assert learn_merges({b"xab": 1, b"ycd": 1}, 300, min_frequency=1).merges  # HF merges those at 1


ML = PATTERNS["multilingual"]


def test_multilingual_cuts_cjk_runs_into_short_pieces():
    clause = "，我们今天下午一起去城市北边的公园散步"  # a comma and 18 Han characters: one gpt4 pre-token
    assert regex.findall(PATTERNS["gpt4"], clause) == [clause]
    assert regex.findall(ML, clause) == ["，我们今天下午", "一起去城市北", "边的公园散步"]
    assert CJK_PIECE == 6
    # Han is not glued to Latin letters or digits; a space or punctuation mark leads a piece
    assert regex.findall(ML, "Python是一种语言 2024年") == ["Python", "是一种语言", " ", "202", "4", "年"]
    assert regex.findall(PATTERNS["gpt4"], "Python是一种语言") == ["Python是一种语言"]
    # Japanese: kanji, hiragana and katakana runs are pieces of their own
    assert regex.findall(ML, "日本語のテキストです。") == ["日本語", "の", "テキスト", "です", "。"]
    # Hangul words are cut by spaces, as Latin ones
    assert regex.findall(ML, "한국어 텍스트를 읽습니다") == ["한국어", " 텍스트를", " 읽습니다"]


def test_multilingual_keeps_combining_marks_with_their_letters():
    # Thai: a consonant and its vowel and tone marks stay together; runs cut at 6 such letters
    thai = "ภาษาไทยง่ายมาก"
    pieces = regex.findall(ML, thai)
    assert pieces == ["ภาษาไท", "ยง่ายมา", "ก"]  # six letters each; the tone mark stays on ง
    assert not any(regex.match(r"[\u0e31\u0e34-\u0e3a\u0e47-\u0e4e]", p) for p in pieces)
    assert regex.findall(ML, "กิน") == ["กิน"]
    assert regex.findall(PATTERNS["gpt4"], "กิน") == ["ก", "ิน"]  # gpt4 cuts at the mark
    # Devanagari vowel signs and a decomposed accent stay inside their word
    assert regex.findall(ML, "हिन्दी भाषा") == ["हिन्दी", " भाषा"]
    assert regex.findall(ML, "cafe\u0301 ok") == ["cafe\u0301", " ok"]


CJK_TEXT = st.text(alphabet=st.sampled_from(list("我们的中文字符日本語のテキストカナー々〇한국어กิ่น，。、！ 　\n abc123") + ["𠀀", "\u0301"]),
                   max_size=120)


@settings(max_examples=300, deadline=None)
@given(st.one_of(CJK_TEXT, st.text(max_size=80)))
def test_multilingual_pieces_tile_the_text_and_hold_at_most_six_cjk_characters(text):
    pieces = regex.findall(ML, text)
    assert "".join(pieces) == text
    han = regex.compile(f"[{HAN}]")
    assert all(len(han.findall(p)) <= CJK_PIECE for p in pieces)
    assert all(len(regex.findall("[\u3041-\u309f]", p)) <= CJK_PIECE for p in pieces)


def test_ties_are_deterministic():
    counts = {b"ab": 3, b"cd": 3, b"xy": 3}
    assert learn_merges(counts, 258).merges == [(97, 98), (99, 100)]
    reordered = dict(reversed(list(counts.items())))
    assert learn_merges(reordered, 258).merges == [(97, 98), (99, 100)]


FIXTURE = Path(__file__).parent / "fixtures" / "zh_en_small.jsonl"
OTHER_SCRIPTS = "日本語のテキストを読みます。カタカナとひらがな。\n한국어 텍스트를 읽습니다.\nภาษาไทยง่ายมาก กินข้าวหรือยัง\nहिन्दी भाषा\nالعربية لغة\nРусский язык\n"


@pytest.fixture(scope="module", params=sorted(PATTERNS))
def tokenizer(request, corpus_text, tmp_path_factory):
    """A tokenizer learned with each built-in pattern on English, code, Chinese and a little of
    other scripts, saved to a folder (tokenizer.json included)."""
    pattern = PATTERNS[request.param]
    zh_en = "\n".join(json.loads(line)["text"] for line in FIXTURE.read_text(encoding="utf-8").splitlines())
    counts = Counter(pretokenize(corpus_text + zh_en + OTHER_SCRIPTS * 3, regex.compile(pattern)))
    tok = BPETokenizer(learn_merges(counts, 1500).merges, pattern)
    folder = tmp_path_factory.mktemp(f"tok-{request.param}")
    tok.save(str(folder))
    return tok, folder


VARIED = [
    "def f(x):\n    return x ** 2  # square\n\n\n\t\ttabs",
    "中文文本和日本語のテキスト、한국어",
    "emoji 🎉🚀 and ZWJ family 👨‍👩‍👧 and flags 🇫🇷",
    "     leading spaces and trailing     ",
    "a" * 3000 + " supercalifragilisticexpialidocious" * 20,
    "numbers 1234567890 3.14159 1e-10 0x1F",
    "literal <|endoftext|> and <|user|> stay text",
    "",
    "\r\n windows \r\n lines \u00a0nbsp\u2028sep",
    "，我们今天下午一起去城市北边的公园散步。Python是一种语言，2024年发布。",
    OTHER_SCRIPTS,
    "混合 mixed 文本\tcode: print('你好')  # 注释\n    return 结果",
]


def test_three_encoders_agree(tokenizer):
    tok, folder = tokenizer
    hf = load_hf(str(folder))
    loaded = BPETokenizer.load(str(folder))
    pat = regex.compile(tok.pattern)
    for text in VARIED:
        ref = encode_reference(text, tok.merges, pat)
        assert tok.encode(text) == ref == loaded.encode(text)
        assert hf.encode(text, add_special_tokens=False).ids == ref
        assert tok.decode(ref) == text
    for threads in (1, 3):  # the pack stage's path: uint32 arrays from tiktoken's buffer
        arrays = tok.encode_arrays(VARIED, threads=threads)
        assert [a.tolist() for a in arrays] == [encode_reference(t, tok.merges, pat) for t in VARIED]
        assert all(a.dtype == np.uint32 for a in arrays)


def test_special_token_text_is_never_a_special_id(tokenizer):
    tok, folder = tokenizer
    ids = tok.encode("before <|endoftext|> after")
    assert tok.eot_id not in ids and set(tok.special_ids.values()).isdisjoint(ids)
    assert tok.encode_arrays(["before <|endoftext|> after"])[0].tolist() == ids
    assert tok.eot_id not in load_hf(str(folder)).encode("<|endoftext|>", add_special_tokens=False).ids
    assert tok.vocab_size == 1500 + len(tok.specials)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_round_trip_any_unicode(tokenizer, text):
    tok, _ = tokenizer
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == encode_reference(text, tok.merges, regex.compile(tok.pattern))


MULTILINGUAL = st.text(alphabet=st.one_of(
    st.sampled_from(list("的一是不了人我在有他这中大来上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从")),
    st.sampled_from(list("あいうえおかきくけこのをはがですますアイウエオカキクケコンー々〇")),
    st.sampled_from(list("가나다라마바사아자차카타파하한국어텍스트")),
    st.sampled_from(list("กขคงจฉชซญดตถทนบปผพฟมยรลวศษสหอฮะัาำิีึืุู่้๊๋็์เแโใไๆ๐๑")),
    st.sampled_from(list("abcdefgxyzABCXYZ0123456789 _-+=*/()[]{}<>:;,.!?'\"#\t\n\r  　，。、！？：；（）《》“”")),
    st.sampled_from(["\u0301", "\u0308", "\u200d", "\ufeff", "😀", "👨", "👩", "𠀀", "\u0e3f", "é", "ß", "ﬁ", "Ω"]),
), max_size=200)


#: Real sentences of the training text, so that learned multi-character tokens meet piece boundaries
SENTENCES = [t for line in FIXTURE.read_text(encoding="utf-8").splitlines()
             for t in regex.split(r"(?<=[。\n])", json.loads(line)["text"]) if t] + OTHER_SCRIPTS.splitlines()
MIXED = st.lists(st.one_of(st.sampled_from(SENTENCES), MULTILINGUAL), max_size=6).map("".join)


@given(st.one_of(MIXED, MULTILINGUAL, st.text(max_size=200)))
@settings(max_examples=300, deadline=None)
def test_three_encoders_agree_on_multilingual_text(tokenizer, text):
    """tiktoken (the pack stage's encoder), HF tokenizer.json and the reference encoder give the
    same ids on CJK, kana, Hangul, Thai with marks, code and mixed text (random characters, and
    sentences of the training text mixed with them), and on any Unicode."""
    tok, folder = tokenizer
    hf = _hf(folder)
    ref = encode_reference(text, tok.merges, regex.compile(tok.pattern))
    assert tok.encode(text) == ref
    assert hf.encode(text, add_special_tokens=False).ids == ref
    assert tok.encode_arrays([text])[0].tolist() == ref


_HF = {}


def _hf(folder):
    if folder not in _HF:
        _HF[folder] = load_hf(str(folder))
    return _HF[folder]
