"""Byte-level BPE: the incremental learner equals a naive one; three encoders give the same ids."""
from collections import Counter

import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.bpe import PATTERNS, PretokenCounter, encode_reference, learn_merges, learn_merges_naive, pretokenize
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


SPACEY = st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000'sdmtlvre.,!?0123459aZé中😀_-")),
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


def test_ties_are_deterministic():
    counts = {b"ab": 3, b"cd": 3, b"xy": 3}
    assert learn_merges(counts, 258).merges == [(97, 98), (99, 100)]
    reordered = dict(reversed(list(counts.items())))
    assert learn_merges(reordered, 258).merges == [(97, 98), (99, 100)]


@pytest.fixture(scope="module")
def tokenizer(corpus_text, tmp_path_factory):
    pattern = PATTERNS["gpt4"]
    counts = Counter(pretokenize(corpus_text, regex.compile(pattern)))
    tok = BPETokenizer(learn_merges(counts, 1200).merges, pattern)
    folder = tmp_path_factory.mktemp("tok")
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
    assert tok.vocab_size == 256 + 1200 - 256 + len(tok.specials)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_round_trip_any_unicode(tokenizer, text):
    tok, _ = tokenizer
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert ids == encode_reference(text, tok.merges, regex.compile(tok.pattern))
