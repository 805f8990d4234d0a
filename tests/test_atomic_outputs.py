"""A data stage writes into a fresh `<folder>.partial` and replaces its folder only once its
manifest is written: a run that fails, for any reason, leaves the previous output as it was."""
import hashlib
import json
from pathlib import Path

import pytest

from pipelines import tokenizer as tokenizer_stage
from pipelines.cli import main


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _tokenizer(clean_run: Path, out: Path, *extra: str) -> int:
    return main(["tokenizer", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--output", str(out),
                 "--set", "tokenizer.vocab_size=600", *extra])


def test_a_failing_rerun_leaves_the_previous_output_whole(clean_run, tmp_path, monkeypatch):
    out = tmp_path / "tok"
    assert _tokenizer(clean_run, out) == 0
    before = _snapshot(out)
    assert "manifest.json" in before

    def broken(*_a, **_k):
        raise RuntimeError("the merge step died half-way")

    monkeypatch.setattr(tokenizer_stage, "learn_merges", broken)
    with pytest.raises(RuntimeError, match="half-way"):
        _tokenizer(clean_run, out, "--force")
    assert _snapshot(out) == before  # nothing of the failed run reached the stage folder
    assert (tmp_path / "tok.partial").is_dir()  # its leftovers are beside it, cleared by the next run

    monkeypatch.undo()
    assert _tokenizer(clean_run, out, "--force", "--set", "tokenizer.vocab_size=700") == 0
    assert not (tmp_path / "tok.partial").exists()
    assert json.loads((out / "manifest.json").read_text())["config"]["vocab_size"] == 700
    assert not list(tmp_path.glob("tok.old-*"))


def test_publish_refuses_a_folder_without_a_complete_manifest(tmp_path):
    from pipelines.manifest import AccountingError
    from pipelines.stage import publish

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kept.txt").write_text("previous")
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / "kept.txt").write_text("half")
    with pytest.raises(AccountingError, match="no complete manifest"):
        publish(str(tmp_path / "out.partial"))
    assert (tmp_path / "out" / "kept.txt").read_text() == "previous"


def test_an_output_a_stage_would_destroy_is_refused_in_one_line(small_corpus, tmp_path, capsys):
    folder, _ = small_corpus
    shards = str(folder / "shard-*.jsonl.gz")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "important.txt").write_text("precious")
    (tmp_path / "a_file").write_text("x")
    copy = tmp_path / "copy"
    copy.mkdir()
    for shard in folder.glob("shard-*.jsonl.gz"):
        (copy / shard.name).write_bytes(shard.read_bytes())
    other = tmp_path / "dedup_out"  # an earlier dedup stage's output: a clean stage must not replace it
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"stage": "dedup", "status": "complete"}))
    (other / "kept.jsonl").write_text("dedup result")
    linked = tmp_path / "linked"  # one shard is a link whose target is gone (an unfetched git-annex file)
    linked.mkdir()
    for shard in folder.glob("shard-*.jsonl.gz"):
        (linked / shard.name).symlink_to(shard)
    (linked / "shard-zz.jsonl.gz").symlink_to(tmp_path / "gone.jsonl.gz")
    cases = [
        (["--input", shards, "--output", str(mine)], "holds files that are not a stage's output"),
        (["--input", shards, "--output", str(other)], "holds the output of the dedup stage"),
        (["--input", str(folder), "--output", str(tmp_path / "new")], "is a folder; give a glob"),
        (["--input", str(linked / "*.jsonl.gz"), "--output", str(tmp_path / "new")], "links to nothing"),
        (["--input", str(copy / "shard-*.jsonl.gz"), "--output", str(copy)], "holds the stage's own input"),
        (["--input", shards, "--output", str(tmp_path / "a_file")], "is a file"),
        (["--input", shards, "--output", str(tmp_path / "a_file" / "below")], "cannot write the output"),
    ]
    for args, says in cases:
        capsys.readouterr()
        assert main(["clean", *args, "--set", "clean.eval_labels=null"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("llmpipe: error: ") and says in err and err.count("\n") == 1, err
    assert (mine / "important.txt").read_text() == "precious"
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in folder.glob("shard-*.jsonl.gz"))
    assert (tmp_path / "a_file").read_text() == "x"
    assert (other / "kept.jsonl").read_text() == "dedup result" and not (tmp_path / "new").exists()


def test_a_training_rerun_keeps_the_finished_run_until_it_finishes(packed, tmp_path, capsys):
    from tests.conftest import pretrain_args

    out = tmp_path / "pt"
    short = ["--set", "pretrain.max_steps=2", "--set", "pretrain.micro_batch=2", "--set", "pretrain.eval_every=2",
             "--set", "pretrain.save_every=1", "--set", "pretrain.export_hf=false"]
    assert main(pretrain_args(packed, out, *short)) == 0
    finished = (out / "final" / "model.safetensors").read_bytes()
    assert main(pretrain_args(packed, out, *short, "--set", "pretrain.lr=1e-3", "--until-step", "1")) == 0
    previous = tmp_path / "pt.previous"
    assert (previous / "final" / "model.safetensors").read_bytes() == finished  # the unfinished rerun kept it
    assert not (out / "manifest.json").exists()
    assert main(pretrain_args(packed, out, *short, "--set", "pretrain.lr=1e-3")) == 0  # resumes and finishes
    assert (out / "manifest.json").exists() and not previous.exists()
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(pretrain_args(packed, tmp_path / "foreign", *short)) == 2
    assert "holds files that are not a pretrain stage's output" in capsys.readouterr().err
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "mine"
