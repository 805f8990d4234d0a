"""The dedup stage end to end through the CLI, on the DirectRunner."""
import gzip
import json

from pipelines.cli import main
from tests.conftest import read_jsonl_gz


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def write_jsonl(path, records):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_dedup_of_the_clean_output(clean_run, small_corpus, tmp_path):
    folder, _ = small_corpus
    out = tmp_path / "dedup"
    args = ["dedup", "--config", "configs/pipeline.yaml", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"),
            "--output", str(out), "--set", f"dedup.eval_labels={folder / 'labels.jsonl'}"]
    assert main(args) == 0
    m = manifest(out)
    c = m["counts"]
    assert c["input"] == manifest(clean_run)["counts"]["kept"]
    assert c["input"] == c["kept"] + c["removed"]["total"] + c["quarantined"]["total"] + c["dropped"]["total"]
    assert c["removed"]["by_reason"]["exact"] >= 1
    ev = m["evaluation"]
    assert ev["exact_above_threshold"]["recall"] == 1.0
    removed = read_jsonl_gz(out / "removed")
    kept_ids = {r["id"] for r in read_jsonl_gz(out / "kept")}
    assert len(removed) == c["removed"]["total"]
    for r in removed:
        assert r["dup_kind"] in ("exact", "near") and r["cluster"] and r["duplicate_of"] != r["id"]
    # Every chain of duplicate_of ends at a kept document.
    by_id = {r["id"]: r for r in removed}
    for r in removed:
        target = r["duplicate_of"]
        while target in by_id:
            target = by_id[target]["duplicate_of"]
        assert target in kept_ids
    clusters = json.loads((out / "clusters.json").read_text())
    assert clusters["bands"] * clusters["rows"] <= clusters["num_perm"] and clusters["s_curve"]["0.80"] >= 0.97
    assert "Planted duplicates found" in (out / "report.md").read_text()
    # Same input, second run into another folder: byte-identical outputs.
    out2 = tmp_path / "dedup2"
    assert main(args[:-4] + ["--output", str(out2), "--set", f"dedup.eval_labels={folder / 'labels.jsonl'}"]) == 0
    for sub in ("kept", "removed"):
        first = sorted((out / sub).glob("*.jsonl.gz"))
        assert [p.name for p in first] == [p.name for p in sorted((out2 / sub).glob("*.jsonl.gz"))]
        assert all(p.read_bytes() == (out2 / sub / p.name).read_bytes() for p in first)


def test_near_duplicates_and_line_dedup_on_handmade_data(tmp_path):
    words = [f"token{i}" for i in range(300)]
    base = " ".join(words)
    variant = " ".join(words[:150] + ["CHANGED"] + words[151:])  # one word: Jaccard ~0.97
    other = " ".join(reversed(words))
    boiler = "This boilerplate line is repeated at the top of many different documents here."
    docs = [
        {"id": "a", "text": base},
        {"id": "b", "text": variant + " and a longer tail"},
        {"id": "c", "text": other},
        {"id": "d", "text": base.upper()},  # same key as "a" once lowercased: exact duplicate
        {"id": "e", "text": f"{boiler}\nUnique content of document e, long enough to stay."},
        {"id": "f", "text": f"{boiler}\nUnique content of document f, long enough to stay."},
        {"id": "g", "text": boiler},  # nothing left once the repeated line goes
    ]
    write_jsonl(tmp_path / "in.jsonl.gz", docs)
    out = tmp_path / "out"
    assert main(["dedup", "--input", str(tmp_path / "in.jsonl.gz"), "--output", str(out),
                 "--set", "dedup.line_dedup=true", "--set", "dedup.line_min_chars=30"]) == 0
    removed = {r["id"]: r for r in read_jsonl_gz(out / "removed")}
    kept = {r["id"]: r for r in read_jsonl_gz(out / "kept")}
    assert set(kept) == {"b", "c", "e", "f"}  # b is the longest of the near cluster {a, b, d}
    assert removed["a"]["dup_kind"] == "near" and removed["a"]["duplicate_of"] == "b"
    assert removed["d"]["dup_kind"] == "exact" and removed["d"]["duplicate_of"] == "a"
    assert removed["a"]["cluster"] == removed["d"]["cluster"] == kept["b"]["cluster"]
    assert boiler in kept["e"]["text"] and boiler not in kept["f"]["text"] and kept["f"]["lines_removed"] == 1
    assert removed["g"]["dup_kind"] == "lines" and "g" not in kept
    report = (out / "report.md").read_text()
    assert "removed 2 repeated lines from 2 documents" in report
    c = manifest(out)["counts"]
    assert c["removed"]["by_reason"] == {"exact": 1, "lines": 1, "near": 1} and c["input"] == 7


def test_run_chains_every_stage_and_resumes(small_corpus, tmp_path, capsys):
    folder, _ = small_corpus
    common = ["--config", "configs/pipeline.yaml", "--set", f"run.root={tmp_path}", "--set", f"run.input={folder / 'shard-0001.jsonl.gz'}",
              "--set", "clean.eval_labels=null", "--set", "dedup.eval_labels=null", "--set", "tokenizer.vocab_size=600",
              "--set", "pack.seq_len=256", "--run-name", "r", "--to", "pack"]
    assert main(["run", *common]) == 0
    dedup_dir = tmp_path / "r" / "02-dedup"
    first = manifest(dedup_dir)
    assert first["counts"]["input"] == manifest(tmp_path / "r" / "01-clean")["counts"]["kept"]
    capsys.readouterr()
    assert main(["run", *common]) == 0
    assert capsys.readouterr().out.count("up to date") == 4  # clean, dedup, tokenizer, pack
    assert (tmp_path / "r" / "03-tokenizer" / "tokenizer.json").exists()
    assert json.loads((tmp_path / "r" / "04-pack" / "manifest.json").read_text())["counts"]["input"] == first["counts"]["kept"]
    # Rerunning the clean stage with another setting invalidates dedup.
    assert main(["run", *common, "--set", "clean.outliers.iqr_k=2.0"]) == 0
    assert manifest(dedup_dir)["fingerprint"] != first["fingerprint"]


def test_multilingual_fixture_every_outcome(tmp_path):
    """zh, ja, th, en and mixed documents with one-character edits, exact copies (spacing, case),
    code/math/symbol pairs and templated notices: every record's outcome is the expected one."""
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures"
    expected = json.loads((fixtures / "dedup_multilingual_expected.json").read_text(encoding="utf-8"))
    out = tmp_path / "out"
    assert main(["dedup", "--input", str(fixtures / "dedup_multilingual.jsonl"), "--output", str(out),
                 "--set", "dedup.prefer_field=q"]) == 0
    kept = {r["id"]: r for r in read_jsonl_gz(out / "kept")}
    removed = {r["id"]: r for r in read_jsonl_gz(out / "removed")}
    assert len(kept) + len(removed) == len(expected)
    for doc_id, (outcome, *of) in expected.items():
        if outcome == "kept":
            assert doc_id in kept, doc_id
            continue
        r = removed[doc_id]
        assert (r["dup_kind"], r["duplicate_of"]) == (outcome, of[0]), doc_id
        assert r["cluster"] == kept[of[0]]["cluster"]  # removed with its cluster, whose keeper stays
    for doc_id, r in kept.items():  # a kept document carries a cluster only when it has duplicates
        assert ("cluster" in r) == any(of == [doc_id] for _, *of in expected.values()), doc_id
    clusters = json.loads((out / "clusters.json").read_text())
    # the six symbol pairs, and the Chinese copy with spaces put in (then found as a near duplicate)
    assert clusters["exact_candidates_rejected"] == 7
    assert clusters["shingle_units"] == {"char5": 11, "char8": 3, "too_short": 20, "word5": 3}
    report = (out / "report.md").read_text()
    assert "7 documents shared a candidate key with a different text" in report
    # the per-language funnel: without a lang field, each record counts under its script
    from llmdata.scripts import dominant_script

    want: dict = {}
    for line in (fixtures / "dedup_multilingual.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        g = want.setdefault(dominant_script(rec["text"]), {"input": 0, "kept": 0, "exact": 0, "near": 0})
        g["input"] += 1
        g[expected[rec["id"]][0]] += 1
    assert clusters["by_language"] == want and len(want) >= 4
    assert "## By language" in report and f"| han | {want['han']['input']} | {want['han']['kept']} |" in report
