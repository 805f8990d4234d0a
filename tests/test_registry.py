"""The stage registry drives the CLI, `llmpipe run --from/--to`, the run folder and the Makefile:
a stage added to the registry is a subcommand and a step of `run` with no other edit."""
import json
import subprocess
from pathlib import Path

from pipelines import registry
from pipelines.cli import build_parser, main
from pipelines.rundir import STAGE_FOLDERS
from pipelines.registry import STAGES, StageCall, StageSpec, stage_names, stage_range

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_stage_is_a_subcommand_and_a_folder():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for stage in STAGES:
        assert stage.name in sub.choices
        help_text = sub.choices[stage.name].format_help()
        assert stage.folder in help_text
        assert ("--until-step" in help_text) == (stage.kind == "train")
    assert list(STAGE_FOLDERS) == list(stage_names())
    assert [s.folder for s in STAGES] == sorted(s.folder for s in STAGES)  # folders number the run order


def test_stage_range_follows_the_registry_and_refuses_a_reversed_range(capsys):
    assert [s.name for s in stage_range("tokenizer", "pretrain")] == ["tokenizer", "pack", "pretrain"]
    assert main(["run", "--from", "pack", "--to", "clean"]) == 2
    assert "--from pack comes after --to clean" in capsys.readouterr().err


def test_a_new_stage_is_one_registry_entry(monkeypatch, tmp_path):
    calls: list[StageCall] = []

    def run(call: StageCall) -> dict:
        calls.append(call)
        Path(call.out).mkdir(parents=True, exist_ok=True)
        (Path(call.out) / "manifest.json").write_text(json.dumps({"stage": "echo", "status": "complete"}))
        return {}

    echo = StageSpec("echo", "10-echo", "train", "a stage added by the test", "Writes a manifest.", run, "nothing")
    monkeypatch.setattr(registry, "STAGES", STAGES + (echo,))
    out = tmp_path / "given"
    assert main(["echo", "--output", str(out), "--until-step", "3"]) == 0
    assert calls[-1].out == str(out) and calls[-1].arg("until_step") == 3
    assert main(["run", "--from", "echo", "--to", "echo", "--set", f"run.root={tmp_path}", "--run-name", "r"]) == 0
    assert calls[-1].out == str(tmp_path / "r" / "10-echo") and calls[-1].given == {}
    assert (tmp_path / "r" / "report.html").exists()


def test_the_makefile_has_a_target_for_every_stage():
    for stage in stage_names():
        dry = subprocess.run(["make", "-n", f"{stage}-stage", "PY=true", "LLMPIPE=llmpipe"], cwd=ROOT,
                             capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        assert f"llmpipe run --config configs/pipeline.yaml --run-name demo --to {stage}" in dry.stdout
