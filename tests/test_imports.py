"""The import rules of the package layout: the library imports neither Beam nor DeepSpeed, and the
training stages and the config loader do not import Beam (each checked in a fresh interpreter)."""
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import pretrain_args

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted(p.stem for p in (ROOT / "llmdata").glob("*.py") if p.stem != "__init__")
TRAINING = sorted(p.stem for p in (ROOT / "training").glob("*.py") if p.stem != "__init__")


def _loaded_after(module: str) -> set[str]:
    probe = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", [f"llmdata.{m}" for m in LIBRARY])
def test_the_library_imports_neither_beam_nor_deepspeed(module):
    loaded = _loaded_after(module)
    assert "apache_beam" not in loaded and "deepspeed" not in loaded


@pytest.mark.parametrize("module", [f"training.{m}" for m in TRAINING] + ["pipelines.config", "pipelines.manifest"])
def test_training_and_the_config_loader_do_not_import_beam(module):
    assert "apache_beam" not in _loaded_after(module)


def test_a_training_stage_runs_from_another_working_directory(packed, tmp_path, monkeypatch):
    args = pretrain_args(packed, tmp_path / "out", "--set", "pretrain.max_steps=2", "--set", "pretrain.micro_batch=2",
                         "--set", "pretrain.eval_every=2", "--set", "pretrain.save_every=2")
    args[args.index("--config") + 1] = str(ROOT / "configs" / "pipeline.yaml")
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: the presets come with the package
    assert main(args) == 0
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()
