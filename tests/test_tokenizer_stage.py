"""The tokenizer stage end to end: Beam counting, merges, saved files loadable by HF, report."""
import json

from llmdata.tokenizer_io import BPETokenizer, load_hf
from pipelines.cli import main


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
