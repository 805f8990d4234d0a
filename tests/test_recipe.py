"""The training-stage skeleton (training/recipe.py): a new training stage is one Recipe subclass,
and the stage modules share code through the skeleton, not through each other's private names."""
import ast
import json
from pathlib import Path

import torch

from pipelines.manifest import input_fingerprint
from training.model import ModelConfig, Transformer
from training.options import TrainSection
from training.recipe import Outcome, Recipe, run_recipe

ROOT = Path(__file__).resolve().parents[1]


class CopyTask(Recipe):
    """A toy stage written the way a new one would be: learn to repeat a fixed token pattern."""

    stage, title = "copy", "Copy task"

    def __init__(self, section, data: Path, tokenizer_dir: Path, out: str, log=print):
        super().__init__(section, out, log)
        self.data, self._tokenizer_dir = data, tokenizer_dir

    def inputs(self) -> dict:
        return {"data": input_fingerprint(str(self.data))}

    def prepare(self) -> None:
        ids = torch.tensor(json.loads(self.data.read_text()))
        windows = [{"input_ids": ids[:-1], "labels": ids[1:]} for _ in range(16)]
        self.train_set = self.val_set = windows
        self.cfg = ModelConfig(vocab_size=32, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, max_seq_len=16,
                               ffn_multiple_of=16)

    def model_to_train(self, rank: int) -> torch.nn.Module:
        torch.manual_seed(self.section.seed)
        return Transformer(self.cfg)

    def describe(self) -> str:
        return "copy: 16 windows"

    def trainer_kwargs(self) -> dict:
        return {"tokens_per_sample": 15, "flops_per_token": self.cfg.flops_per_token(15)}

    def save(self, state):
        from training.export import save_model

        save_model(f"{self.out}/final", state, self.cfg)
        return f"{self.out}/final", {"weights": "final/model.safetensors"}

    def tokenizer_dir(self) -> str:
        return str(self._tokenizer_dir)

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        return Outcome({"windows": 16}, {"windows": 16}, f"copy: val loss {summary['val_loss']:.3f}",
                       manifest={"first_loss": summary["train_loss_last"]})


def test_a_new_training_stage_is_one_recipe(tmp_path):
    data = tmp_path / "ids.json"
    data.write_text(json.dumps([1, 2, 3, 4] * 4))
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    section = TrainSection(micro_batch=4, max_steps=6, lr=1e-2, warmup_steps=0, eval_every=3, eval_batches=1,
                           save_every=6, tensorboard=False, export_hf=False, precision="fp32")
    lines: list[str] = []
    out = tmp_path / "copy"
    manifest = run_recipe(CopyTask(section, data, tmp_path / "tok", str(out), lines.append), progress=False)
    assert manifest["status"] == "complete" and manifest["counts"] == {"windows": 16}
    assert manifest["outputs"] == {"weights": "final/model.safetensors", "metrics": "metrics.jsonl", "report": "report.md"}
    assert manifest["summary"]["steps"] == 6 and "first_loss" in manifest
    # the stage's own time (reading, evaluating, saving) beside the training loop's: the run report shows it
    assert manifest["timings"]["total_s"] >= manifest["timings"]["wall_s"] > 0
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]  # it trained
    assert (out / "final" / "tokenizer.json").exists()  # the skeleton put the tokenizer beside the weights
    assert "# Copy task" in (out / "report.md").read_text() and lines[-1].startswith("copy: val loss")
    again: list[str] = []
    assert run_recipe(CopyTask(section, data, tmp_path / "tok", str(out), again.append), progress=False) == \
        json.loads((out / "manifest.json").read_text())
    assert again == [f"copy: up to date in {out} (use --force to rerun)"]


def test_no_training_module_imports_another_modules_private_names():
    offenders = []
    for path in sorted((ROOT / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("training", "pipelines", "llmdata")):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_the_stage_modules_run_on_the_skeleton():
    """Each model stage's module defines a Recipe; none defines its own run function any more."""
    from pipelines.registry import STAGES

    from training.dpo import DPORecipe
    from training.finetune import LoraRecipe, SFTRecipe
    from training.pretrain import PretrainRecipe
    from training.reward import RewardRecipe
    from training.rl_stage import RLRecipe

    recipes = {r.stage: r for r in (PretrainRecipe, SFTRecipe, LoraRecipe, RewardRecipe, DPORecipe, RLRecipe)}
    assert set(recipes) == {s.name for s in STAGES if s.kind == "train"}
    for name in ("pretrain", "finetune", "reward", "dpo", "rl_stage"):
        tree = ast.parse((ROOT / "training" / f"{name}.py").read_text())
        assert not [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("run_")]
