"""The tokenizer stage end to end: Beam counting, merges, saved files loadable by HF, report
(with held-out bytes/token per language), and the bounded pre-token table."""
import json
from pathlib import Path

from llmdata.bpe import PATTERNS
from llmdata.tokenizer_io import BPETokenizer, load_hf
from pipelines.cli import main
from pipelines.tokenizer import bounded_table, heldout_by_language


def test_tokenizer_stage_trains_saves_and_reports(clean_run, tmp_path):
    out = tmp_path / "tok"
    args = ["tokenizer", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--output", str(out),
            "--set", "tokenizer.vocab_size=1000", "--set", "tokenizer.heldout_fraction=0.1"]
    assert main(args) == 0
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert c["input"] == c["train"] + c["heldout"] + c["quarantined"]["total"] + c["dropped"]["total"]
    assert c["heldout"] > 0 and c["train"] > c["heldout"]
    tok = BPETokenizer.load(str(out))
    assert tok.vocab_size == 1000 and tok.eot_id == 1000 - len(tok.specials)
    hf = load_hf(str(out))
    text = "def parse(self, data):\n    return json.loads(data)  # <|endoftext|>"
    assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)
    assert tok.decode(tok.encode(text)) == text
    merges = (out / "merges.txt").read_text().splitlines()
    assert merges[0].startswith("#version") and len(merges) == 1 + len(tok.merges)
    assert len(json.loads((out / "vocab.json").read_text())) == tok.vocab_size
    report = (out / "report.md").read_text()
    assert "held-out bytes per token" in report and m["tokenizer"]["heldout_bytes_per_token"] > 2.0
    # Rerun: skipped; a bigger vocabulary: rerun with more merges.
    assert main(args) == 0
    assert json.loads((out / "manifest.json").read_text())["finished_at"] == m["finished_at"]
    assert main(args[:-4] + ["--set", "tokenizer.vocab_size=1500", "--set", "tokenizer.heldout_fraction=0.1"]) == 0
    assert BPETokenizer.load(str(out)).vocab_size == 1500


def test_a_broken_pattern_is_one_line(clean_run, tmp_path, capsys):
    code = main(["tokenizer", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--output", str(tmp_path / "t"),
                 "--set", "tokenizer.pattern=(unclosed"])
    assert code == 2 and "tokenizer.pattern" in capsys.readouterr().err


def test_no_training_text_is_one_line_not_an_empty_tokenizer(tmp_path, capsys):
    """An empty file, or one whose every line is quarantined, used to give a 0-merge tokenizer and exit 0."""
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.jsonl").write_text('{"text": 1}\n[1, 2]\n{"id": "a", "text": "x\n\n')
    for name, says in [("empty.jsonl", "(0 records"), ("bad.jsonl", "(4 records: 0 held out, 4 quarantined or dropped")]:
        capsys.readouterr()
        code = main(["tokenizer", "--input", str(tmp_path / name), "--output", str(tmp_path / "t")])
        err = capsys.readouterr().err
        assert code == 2 and "no training text" in err and says in err and err.count("\n") == 1, err
        assert not (tmp_path / "t").exists()


FIXTURE = Path(__file__).parent / "fixtures" / "zh_en_small.jsonl"  # 40 Chinese and 40 English documents


def _run(tmp_path, src, *sets):
    out = tmp_path / "tok"
    args = ["tokenizer", "--input", str(src), "--output", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return out, json.loads((out / "manifest.json").read_text()), (out / "report.md").read_text()


def test_pretokens_seen_once_are_kept_and_a_merge_needs_min_frequency_pairs(tmp_path):
    """Each clause is one pre-token seen once; "我们" occurs in two of them, so its bytes are merged
    into one token (min_frequency 2 counts pairs); nothing seen once is merged. Pruning pre-tokens
    seen once, as the stage did before, left the table empty and learned no merge at all."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n"
                           for i, t in enumerate(["我们走", "我们飞", "他说"])), encoding="utf-8")
    out, m, report = _run(tmp_path, src, "tokenizer.vocab_size=300", "tokenizer.heldout_fraction=0")
    figures = m["tokenizer"]
    assert figures["distinct_pretokens"] == figures["table_size"] == 3
    assert figures["pruned_pretokens"] == 0 and figures["pruned_at_or_below"] is None
    assert "| pruned (the cap was exceeded) | none |" in report
    tok = BPETokenizer.load(str(out))
    learned = [tok.vocab[256 + i] for i in range(len(tok.merges))]
    assert learned[-1] == "我们".encode() and all(t in "我们".encode() for t in learned)  # nothing seen once


def test_bounded_table_prunes_whole_frequency_classes_only_past_the_cap():
    top = [("a", 5), ("b", 3), ("c", 2), ("d", 2)]
    assert bounded_table(top, 4) == ({b"a": 5, b"b": 3, b"c": 2, b"d": 2}, None)  # at the cap: all kept
    assert bounded_table(top, 3) == ({b"a": 5, b"b": 3}, 2)  # past it: every count <= 2 goes, ties too
    assert bounded_table([("x", 1)] * 4, 3) == ({}, 1)


def test_heldout_by_language_uses_lang_then_script():
    tok = BPETokenizer([], PATTERNS["multilingual"])
    records = [{"text": "中文文本", "lang": "zh"}, {"text": "中文", "meta": {"lang": "zh"}}, {"text": "plain words"},
               {"text": "更多的中文"}, {"text": "日本語のテキストです"}, {"text": "12 34"}]
    got = heldout_by_language(tok, records)
    assert {k: (v["documents"], v["grouped_by"]) for k, v in got.items()} == {
        "zh": (2, "lang"), "latin": (1, "script"), "han": (1, "script"), "kana": (1, "script"), "none": (1, "script")}
    assert got["zh"]["bytes"] == 18 and got["zh"]["tokens"] == 18 and got["zh"]["bytes_per_token"] == 1.0  # no merges: bytes


def test_stage_reports_bytes_per_token_per_language_on_chinese_and_english(tmp_path):
    out, m, report = _run(tmp_path, FIXTURE, "tokenizer.vocab_size=1200", "tokenizer.heldout_fraction=0.2")
    by_lang = m["tokenizer"]["heldout_by_language"]
    assert set(by_lang) == {"han", "latin"} and all(g["grouped_by"] == "script" for g in by_lang.values())
    assert by_lang["han"]["documents"] == 4 and by_lang["latin"]["documents"] == 9  # the fixed split of the fixture
    # unmerged bytes would give 1.0; Han near one token per character (3 bytes) or better
    assert by_lang["han"]["bytes_per_token"] > 2.5 and by_lang["latin"]["bytes_per_token"] > 2.5
    for name, g in by_lang.items():
        assert f"| {name} | script | {g['documents']} | {g['bytes']} | {g['tokens']} | {g['bytes_per_token']:.3f} |" in report
    assert "| pre-tokenizer | `multilingual` |" in report and "| pruned (the cap was exceeded) | none |" in report
    tok = BPETokenizer.load(str(out))
    text = "我们用开源的工具来检查模型的输出，Python 是一种语言。"
    assert load_hf(str(out)).encode(text, add_special_tokens=False).ids == tok.encode(text)
    assert tok.decode(tok.encode(text)) == text


def test_a_table_past_max_pretokens_is_pruned_and_the_report_says_so(tmp_path):
    out, m, report = _run(tmp_path, FIXTURE, "tokenizer.vocab_size=400", "tokenizer.max_pretokens=100")
    f = m["tokenizer"]
    assert f["distinct_pretokens"] > 100 and f["table_size"] <= 100
    assert f["pruned_at_or_below"] >= 1 and f["pruned_pretokens"] == f["distinct_pretokens"] - f["table_size"]
    assert "The pre-token table was capped" in report
    assert f"every pre-token seen {f['pruned_at_or_below']} times or fewer" in report
