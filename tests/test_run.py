"""`llmpipe run` as a whole: killed mid-stage, it resumes at the first unfinished stage (from that
stage's checkpoint), and it ends with one self-contained report."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.cli import main
from pipelines.run_report import build, funnel

ROOT = Path(__file__).resolve().parents[1]


def run_args(corpus: Path, root: Path) -> list[str]:
    return ["run", "--config", "configs/pipeline.yaml", "--run-name", "k", "--to", "pretrain",
            "--set", f"run.root={root}", "--set", f"run.input={corpus / 'shard-0000.jsonl.gz'}",
            "--set", "clean.eval_labels=null", "--set", "dedup.eval_labels=null", "--set", "tokenizer.vocab_size=600",
            "--set", "pack.seq_len=128", "--set", "pack.val_fraction=0.1",
            "--set", "pretrain.model_overrides={d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2}",
            "--set", "pretrain.max_steps=60", "--set", "pretrain.micro_batch=4", "--set", "pretrain.save_every=5",
            "--set", "pretrain.eval_every=30", "--set", "pretrain.warmup_steps=2", "--set", "pretrain.tensorboard=false",
            "--set", "pretrain.generate.max_new_tokens=8"]


def test_a_killed_run_resumes_at_the_first_unfinished_stage_and_reports(small_corpus, tmp_path, capsys):
    args = run_args(small_corpus[0], tmp_path)
    stage = tmp_path / "k" / "05-pretrain"
    log = tmp_path / "first-run.log"
    # A fresh process, as a user would start it: not the rendezvous settings of this test process,
    # whose in-process training left its own (and still holds that port).
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.time() + 300
    try:
        while not (stage / "checkpoints" / "latest").exists():  # mid-pretraining, after a checkpoint
            assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint within 5 minutes"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (stage / "manifest.json").exists()
    for folder in ("01-clean", "02-dedup", "03-tokenizer", "04-pack"):
        assert (tmp_path / "k" / folder / "manifest.json").exists()

    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") == 4  # the data stages are not redone
    summary = json.loads((stage / "manifest.json").read_text())["summary"]
    assert summary["resumed_from"] >= 5 and summary["steps"] == 60  # pretraining went on from its checkpoint
    report = tmp_path / "k" / "report.html"
    assert f"report {report}" in out
    text = report.read_text()
    for heading in ("Data funnel", "Tokenizer", "Packing", "Training", "Samples"):
        assert f"<h2>{heading}</h2>" in text, heading
    assert text.count("src='data:image/png;base64,") == 2  # the funnel and loss charts are inside the file
    markdown = (tmp_path / "k" / "report.md").read_text()
    assert "report_files/loss.png" in markdown
    total = sum(json.loads((tmp_path / "k" / f / "manifest.json").read_text())["timings"].get("total_s", 0)
                for f in ("01-clean", "02-dedup", "03-tokenizer", "04-pack", "05-pretrain"))
    assert f"| all stages |  | {total:,.4g} |" in markdown  # where the run's time went, summed


def test_the_funnel_accounts_for_every_record(small_corpus, tmp_path):
    args = run_args(small_corpus[0], tmp_path)
    assert main([*args[:5], "--to", "dedup", *args[7:]]) == 0
    steps = funnel({s: json.loads((tmp_path / "k" / f / "manifest.json").read_text())
                    for s, f in (("clean", "01-clean"), ("dedup", "02-dedup"))})
    clean = json.loads((tmp_path / "k" / "01-clean" / "manifest.json").read_text())["counts"]
    assert steps[0] == ("records read", clean["input"], "")
    removed = sum(int(why.split(":")[0]) for _, _, why in steps[1:] if why)  # "-N: reason n, ..."
    assert steps[-1][1] == clean["input"] + removed  # what is left = read - everything removed, step by step
    title, sections = build(str(tmp_path / "k"))
    assert title == "Run report: k" and [s.title for s in sections][:2] == ["Stages", "Data funnel"]


def test_report_survives_hand_edited_manifests(small_corpus, tmp_path, capsys):
    """A broken or hand-edited manifest gives a report that says so, not a traceback."""
    args = run_args(small_corpus[0], tmp_path)
    assert main([*args[:5], "--to", "dedup", *args[7:]]) == 0
    clean = tmp_path / "k" / "01-clean" / "manifest.json"
    m = json.loads(clean.read_text())
    m["timings"]["total_s"], m["counts"] = "12 s", "n/a"
    clean.write_text(json.dumps(m))
    (tmp_path / "k" / "02-dedup" / "manifest.json").write_text("[1, 2]")
    title, sections = build(str(tmp_path / "k"))
    stages = {row[0]: row for row in sections[0].blocks[-1][2]}
    assert stages["02-dedup"][1] == "unreadable manifest" and stages["03-tokenizer"][1] == "not run"
    assert stages["01-clean"][2] == "-"  # no number to show (and none added to the total)
    funnel_section = next(s for s in sections if s.title == "Data funnel")
    assert funnel_section.blocks[0][1].startswith("Not shown: the manifests do not hold what this section reads")
    capsys.readouterr()
    assert main(["report", "--run-dir", str(tmp_path / "k")]) == 0


def test_a_stage_made_from_an_input_that_changed_since_is_reported_stale(small_corpus, tmp_path, capsys):
    """Rerunning clean alone (another threshold) leaves dedup made from the earlier clean output:
    the report says so, where it said "complete"; and a rerun of dedup clears it."""
    args = run_args(small_corpus[0], tmp_path)
    dedup = [*args[:5], "--to", "dedup", *args[7:]]
    assert main(dedup) == 0

    def statuses() -> dict:
        _, sections = build(str(tmp_path / "k"))
        return {row[0]: row[1] for row in sections[0].blocks[-1][2]}

    assert statuses()["02-dedup"] == "complete"
    assert main([*args[:5], "--to", "clean", *args[7:], "--set", "clean.outliers.iqr_k=2.5"]) == 0
    now = statuses()
    assert now["01-clean"] == "complete"
    assert now["02-dedup"] == f"complete; stale: its input {tmp_path / 'k' / '01-clean'} changed since (rerun it)"
    assert main([*dedup, "--set", "clean.outliers.iqr_k=2.5"]) == 0
    assert statuses()["02-dedup"] == "complete"
    # --from takes the stages before it as they are: one made with other settings than the config's is named
    capsys.readouterr()
    assert main([*args[:5], "--from", "dedup", "--to", "dedup", *args[7:]]) == 0
    err = capsys.readouterr().err
    assert (f"run: warning: {tmp_path / 'k' / '01-clean'} was made with other clean settings than the config's "
            "(outliers.iqr_k: 2.5 -> 3.0); --from dedup uses it as it is (--from clean remakes it)") in err
    assert main([*args[:5], "--from", "dedup", "--to", "dedup", *args[7:], "--set", "clean.outliers.iqr_k=2.5"]) == 0
    assert "warning" not in capsys.readouterr().err
