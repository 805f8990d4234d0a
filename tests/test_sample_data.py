"""The demo corpus is deterministic and plants what it says it plants."""
import gzip
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.sample_data import build_corpus, near_duplicate, write_corpus


def _records(lines: list) -> list[dict]:
    """The corpus lines that are records with a string id and text (the planted bad lines left out)."""
    out = []
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("id"), str) and isinstance(rec.get("text"), str):
            out.append(rec)
    return out


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_corpus(str(a), seed=3, shards=2, max_docs=30)
    write_corpus(str(b), seed=3, shards=2, max_docs=30)
    for name in ("shard-0000.jsonl.gz", "shard-0001.jsonl.gz", "labels.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    lines = sum(1 for n in ("shard-0000.jsonl.gz", "shard-0001.jsonl.gz") for _ in gzip.open(a / n))
    assert lines == build_corpus(3, 30)[2]["lines"]


def test_planted_noise_is_labelled():
    lines, labels, summary = build_corpus(0, 40)
    assert summary["good"] == 40 and summary["good:exact_dup"] >= 1 and summary["good:near_dup"] >= 1
    kinds = {lab["label"] for lab in labels}
    assert {"junk:gibberish", "junk:repeated_token", "junk:huge_log", "junk:tiny", "junk:symbol_soup"} <= kinds
    bad = {k for k in summary if k.startswith("bad:")}
    assert {"bad:invalid_json", "bad:invalid_utf8", "bad:missing_text", "bad:null_text", "bad:empty_text",
            "bad:non_string_text", "bad:duplicate_id", "bad:blank_line"} <= bad
    ids = [lab["id"] for lab in labels]
    assert len(ids) == len(set(ids))
    dup_of = {lab["id"]: lab["duplicate_of"] for lab in labels if "duplicate_of" in lab}
    by_id: dict = {}
    for rec in _records(lines):
        by_id.setdefault(rec["id"], set()).add(rec["text"])
    exact = [lab["id"] for lab in labels if lab["label"] == "good:exact_dup"]
    assert exact and all(by_id[i] <= by_id[dup_of[i]] for i in exact)


def test_near_duplicates_stay_near():
    import random

    text = " ".join(f"word{i}" for i in range(400))
    copy = near_duplicate(text, random.Random(1))
    a, b = set(text.split()), set(copy.split())
    assert copy != text and len(a & b) / len(a | b) > 0.85


def test_multilingual_slice_is_labelled_and_planted():
    from llmdata.sample_data import MULTILINGUAL_DOCS, mojibake
    from llmdata.scripts import dominant_script

    lines, labels, summary = build_corpus(0, 30)
    by_id = {rec["id"]: rec["text"] for rec in _records(lines)}
    ml = [lab for lab in labels if "lang" in lab]
    assert {lab["lang"] for lab in ml} == {"zh", "ja", "ko", "th", "ru", "ar", "hi", "he"}
    assert all(lab["id"] in by_id for lab in ml)
    script = {"zh": "han", "ja": "kana", "ko": "hangul", "th": "thai", "ru": "cyrillic", "ar": "arabic", "hi": "devanagari", "he": "hebrew"}
    for lang, texts in MULTILINGUAL_DOCS.items():
        assert len(texts) >= 4 and all(dominant_script(t) == script[lang] for t in texts)
        assert summary[f"lang:{lang}"] >= len(texts) + 1
    for lab in ml:
        text = by_id[lab["id"]]
        kind, lang, *rest = lab["label"].split(":")
        assert lang == lab["lang"] and kind in ("good", "junk")
        if rest == ["exact_dup"]:
            assert text == by_id[lab["duplicate_of"]]
        elif rest == ["near_dup"]:  # exactly one character differs
            orig = by_id[lab["duplicate_of"]]
            assert len(text) == len(orig) and sum(a != b for a, b in zip(text, orig)) == 1
        elif rest == ["random_cjk"]:
            assert all(line.endswith("\u3002") for line in text.split("\n")) and dominant_script(text) == "han"
        elif rest == ["mojibake"]:  # the UTF-8 bytes of a manual, read as cp1252
            assert dominant_script(text) == "latin" and any(text == mojibake(t) for t in MULTILINGUAL_DOCS[lang])
        else:
            assert kind == "good" and not rest and text in MULTILINGUAL_DOCS[lang]
    kinds = {lab["label"].split(":", 2)[-1] if lab["label"].count(":") == 2 else "good" for lab in ml}
    assert {"good", "exact_dup", "near_dup", "random_cjk", "mojibake"} <= kinds


def test_multilingual_slice_leaves_the_english_part_unchanged():
    """The slice is appended after the shuffle with its own random.Random: the English lines are the
    same lines in the same order as without it (the generator's output before the slice existed)."""
    lines, labels, _ = build_corpus(5, 25)
    english, english_labels, _ = build_corpus(5, 25, multilingual=False)
    assert lines[: len(english)] == english and len(lines) > len(english)
    assert labels[: len(english_labels)] == english_labels


# ---- the alignment tasks (llmdata/sample_tasks.py) ------------------------------------------------

def _pairs(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _numbers(prompt: str) -> list[int]:
    import re

    return [int(x) for x in re.findall(r"\d+", prompt)]


def _error_is_what_it_says(row: dict) -> bool:
    """The rejected answer of `row` is the error its label names (independent of the generator's code)."""
    chosen, rejected, error, prompt = row["chosen"], row["rejected"], row["error"], row["prompt"]
    if row["task"] in ("add", "larger"):
        a, b = _numbers(prompt)
        value, good = int(rejected), int(chosen)
        return {"off_by_one": abs(value - good) == 1, "off_by_two": abs(value - good) == 2,
                "off_by_3_to_9": 3 <= abs(value - good) <= 9, "an_operand": value in (a, b),
                "the_smaller": value == min(a, b), "near_the_larger": 1 <= abs(value - good) <= 9 and 0 <= value < 100,
                "other_number": 0 <= value < 100}[error]
    words, good, bad = prompt.split(":", 1)[1].split(), chosen.split(), rejected.split()
    outside = [w for w in bad if w not in words]
    diff = [i for i, (x, y) in enumerate(zip(good, bad)) if x != y]
    same_length = len(bad) == len(good)
    return {"word_replaced": same_length and len(diff) == 1 and len(outside) == 1,
            "two_words_replaced": same_length and len(diff) == 2 and len(outside) == 2,
            "word_duplicated": same_length and len(diff) == 1 and not outside and len(set(bad)) == len(bad) - 1,
            "adjacent_swap": same_length and len(diff) == 2 and diff[1] == diff[0] + 1 and sorted(bad) == sorted(good),
            "word_dropped": len(bad) == len(good) - 1 and all(w in good for w in bad),
            "not_reversed": bad == words, "not_sorted": bad == words}[error]


def test_preference_errors_leave_the_demo_sft_rows_unchanged(tmp_path):
    """The SFT model must not change with the preference data: the demo's conversations (seed 0)
    are pinned to the bytes written before the rejected answers had several error kinds."""
    import hashlib

    from llmdata.sample_tasks import write_tasks

    write_tasks(str(tmp_path), seed=0)
    digest = {name: hashlib.sha256((tmp_path / "sft" / name).read_bytes()).hexdigest() for name in ("train.jsonl", "heldout.jsonl")}
    assert digest == {"train.jsonl": "e3e12b02457d37542ddf7f38635549846b7100368edf199e19588f1835fde571",
                      "heldout.jsonl": "b2d864150dd052c325fe71c369862c7a71dd7712075f34f44b4641edc5387111"}
    one = tmp_path / "one"  # one pair per prompt: still the same conversations and held-out pairs
    write_tasks(str(one), seed=0, rejected_per_prompt=1)
    for name in ("sft/train.jsonl", "sft/heldout.jsonl", "preferences/heldout.jsonl"):
        assert (one / name).read_bytes() == (tmp_path / name).read_bytes()
    single, five = _pairs(one / "preferences" / "train.jsonl"), _pairs(tmp_path / "preferences" / "train.jsonl")
    assert len(single) == 3000 and len(five) == 5 * 3000 == 5 * len(single)
    for k, row in enumerate(single):  # the same prompt and chosen answer, with five rejected answers
        group = five[5 * k : 5 * k + 5]
        assert {(r["prompt"], r["chosen"]) for r in group} == {(row["prompt"], row["chosen"])}
    distinct = sum(len({r["rejected"] for r in five[i : i + 5]}) == 5 for i in range(0, len(five), 5))
    assert distinct > 0.95 * 3000


def test_every_rejected_answer_is_wrong_by_the_checker_and_each_task_has_several_errors(tmp_path):
    from collections import Counter

    from llmdata.sample_tasks import ERRORS, TASKS, write_tasks
    from training.rewards import RewardInput, exact_match_reward

    write_tasks(str(tmp_path), seed=0)
    rows = _pairs(tmp_path / "preferences" / "train.jsonl") + _pairs(tmp_path / "preferences" / "heldout.jsonl")
    assert len(rows) == 5 * 3000 + 200
    items = [RewardInput([{"role": "user", "content": r["prompt"]}], r["chosen"], text, [], True)
             for r in rows for text in (r["chosen"], r["rejected"])]
    assert exact_match_reward(items) == [1.0, 0.0] * len(rows)
    assert all(_error_is_what_it_says(r) for r in rows)
    for task in TASKS:
        assert len({r["error"] for r in rows if r["task"] == task}) == len(ERRORS[task]) > 1
    one = tmp_path / "one"  # one pair per prompt: the kinds follow ERRORS' weights
    write_tasks(str(one), seed=0, rejected_per_prompt=1)
    single = _pairs(one / "preferences" / "train.jsonl")
    for task in TASKS:
        counts = Counter(r["error"] for r in single if r["task"] == task)
        n = sum(counts.values())
        assert n == 600
        for error, weight in ERRORS[task]:  # within 6 points: about 3 standard errors of 600 draws
            assert abs(counts[error] / n - weight / 100) < 0.06, (task, error, counts)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), per_prompt=st.integers(1, 4))
def test_any_seed_gives_labelled_wrong_rejected_answers(tmp_path_factory, seed, per_prompt):
    from llmdata.sample_tasks import write_tasks

    out = tmp_path_factory.mktemp("tasks")
    write_tasks(str(out), seed=seed, train=40, heldout=10, rejected_per_prompt=per_prompt)
    rows = _pairs(out / "preferences" / "train.jsonl")
    assert len(rows) == 40 * per_prompt and len(_pairs(out / "preferences" / "heldout.jsonl")) == 10
    for r in rows:
        assert r["rejected"].strip() != r["chosen"].strip() and _error_is_what_it_says(r), r
