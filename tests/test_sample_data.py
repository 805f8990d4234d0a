"""The demo corpus is deterministic and plants what it says it plants."""
import gzip
import json

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
