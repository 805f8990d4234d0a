"""Classical Chinese against `junk:random_letters` (llmdata.junk.han_reuse): Tang poems and
classical prose, written out for these tests in tests/fixtures/classical_zh.jsonl (public domain), are
kept, while Han drawn uniformly from the everyday sets (generated here from a seeded RNG, in lines of
12-60 characters like bench/junk_random_letters.py) is still rejected."""
import json
import math
import random
import statistics
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmdata.junk import (GB2312_LEVEL1, MIN_HAN_REUSE, MIN_LETTER_PAIRS, _decode_range, common_cjk, han_reuse,
                          junk_reason, junk_scores)

FIXTURE = Path(__file__).parent / "fixtures" / "classical_zh.jsonl"
DOCS = {d["id"]: d for d in map(json.loads, FIXTURE.read_text(encoding="utf-8").splitlines())}
GB2312_L1 = "".join(sorted(_decode_range("gb2312", range(0xB0, 0xD8), list(range(0xA1, 0xFF)))))
COMMON_HAN = "".join(sorted(c for c in common_cjk() if "\u4e00" <= c <= "\u9fff"))
WHOLE_BLOCK = "".join(chr(c) for c in range(0x4E00, 0x9FA6))


def han_lines(rng: random.Random, letters: str, n_letters: int) -> str:
    lines, n = [], 0
    while n < n_letters:
        line = "".join(rng.choice(letters) for _ in range(rng.randint(12, 60)))
        n += len(line)
        lines.append(line + "。")
    return "\n".join(lines)


def pairs_alone(scores: dict) -> str | None:
    """junk_reason without the han_reuse exemption (the rule before classical Chinese was kept)."""
    return junk_reason({**scores, "han_share": 0.0})


def test_classical_chinese_is_not_junk():
    for doc_id, doc in DOCS.items():
        if doc["expected"] is not None:
            continue
        scores = junk_scores(doc["text"], doc["text"])
        assert scores["letter_pairs"] >= MIN_LETTER_PAIRS, doc_id  # judged, not let through for being short
        assert scores["han_share"] == 1.0 and scores["han_reuse"] >= 2 * MIN_HAN_REUSE, (doc_id, scores)
        assert junk_reason(scores) is None, (doc_id, scores)
    # the poems are why: one character a word, so their pairs repeat no more often than chance
    for doc_id in ("tang-li-du-wang", "tang-eleven-poets"):
        text = DOCS[doc_id]["text"]
        assert pairs_alone(junk_scores(text, text)) == "junk:random_letters", doc_id


def test_thousand_character_classic_is_still_rejected():
    """The documented exception: it repeats no character (by design), so neither its pairs nor its
    characters tell it from random common hanzi."""
    text = DOCS["qianziwen"]["text"]
    scores = junk_scores(text, text)
    assert scores["han_reuse"] < 0 and junk_reason(scores) == DOCS["qianziwen"]["expected"]


def test_uniform_random_han_is_still_junk():
    rng = random.Random(20)
    for name, letters in (("GB2312 L1", GB2312_L1), ("common sets", COMMON_HAN), ("whole block", WHOLE_BLOCK)):
        for _ in range(40):
            text = han_lines(rng, letters, rng.randint(200, 1500))
            scores = junk_scores(text, text)
            assert scores["letter_pairs"] >= MIN_LETTER_PAIRS and scores["han_reuse"] < MIN_HAN_REUSE, (name, scores)
            assert junk_reason({**scores, "cjk_letters": 0.0}) == "junk:random_letters", (name, scores)  # this rule alone
    assert len(GB2312_L1) == GB2312_LEVEL1


def test_han_reuse_follows_the_occupancy_distribution():
    """Reference: Monte Carlo. Uniform draws from GB 2312 level 1 give z with mean 0 and sd 1."""
    rng = random.Random(4)
    for n in (100, 500, 2000):
        zs = [han_reuse("".join(rng.choice(GB2312_L1) for _ in range(n)))[0] for _ in range(600)]
        assert abs(statistics.fmean(zs)) < 0.15 and 0.85 < statistics.stdev(zs) < 1.15, (n, statistics.fmean(zs), statistics.stdev(zs))
    # draws from a smaller set repeat more: from the 1,000 first of level 1, z grows with the sample
    small = GB2312_L1[:1000]
    assert han_reuse("".join(rng.choice(small) for _ in range(300)))[0] > MIN_HAN_REUSE


def test_han_reuse_needs_han_dominant_text():
    """Repeated hanzi do not save random Latin letters: the exemption needs Han to be at least half
    of the letters (one-character runs: no pair for the pair test to find repeated)."""
    rng = random.Random(9)
    latin = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(250))
    text = latin + "\n" + "的、是、" * 100
    scores = junk_scores(text, text)
    assert scores["han_reuse"] >= MIN_HAN_REUSE and scores["han_share"] < 0.5
    assert junk_reason(scores) == "junk:random_letters"
    assert han_reuse("plain ASCII") == (0.0, 0.0) and han_reuse("한국어 텍스트") == (0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.text())
@example("⺀⺁⺂ a")  # CJK radicals are of the Han script but not letters
@example("〇〇〇〇")
def test_han_reuse_is_finite_for_any_text(text):
    z, share = han_reuse(text)
    assert math.isfinite(z) and 0.0 <= share <= 1.0
