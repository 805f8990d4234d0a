"""The demo corpus is deterministic and plants what it says it plants."""
import gzip
import json

from llmdata.sample_data import build_corpus, near_duplicate, write_corpus


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
    by_id = {}
    for raw in lines:
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("id"), str) and isinstance(rec.get("text"), str):
            by_id.setdefault(rec["id"], set()).add(rec["text"])
    exact = [lab["id"] for lab in labels if lab["label"] == "good:exact_dup"]
    assert exact and all(by_id[i] <= by_id[dup_of[i]] for i in exact)


def test_near_duplicates_stay_near():
    import random

    text = " ".join(f"word{i}" for i in range(400))
    copy = near_duplicate(text, random.Random(1))
    a, b = set(text.split()), set(copy.split())
    assert copy != text and len(a & b) / len(a | b) > 0.85
