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
