"""The one skeleton every training stage runs on: a stage is a `Recipe`, `run_recipe` runs it.

    inputs() ─► fingerprint ─► up to date? return its manifest
      ─► prepare()                read and check the data and the model (nothing touched yet)
      ─► start_stage              join the ranks, keep or clear the stage folder
      ─► model_to_train(rank)     measurements before training (rank 0), adapters, the seed
      ─► Trainer(..., **trainer_kwargs()) ─► attach(trainer) ─► trainer.run
      ─► on rank 0: save(state) ─► the tokenizer beside the weights ─► HF export
         ─► evaluate(summary) ─► report.md ─► manifest.json (written last)

A recipe supplies its data, model, loss, evaluation and what it saves, the shape of TRL's trainers
(trl/trainer/*_trainer.py, which override `compute_loss`) and torchtitan's recipes; the order of
the steps, the stage contract (fingerprint, atomic rerun, checkpoints, manifest) and the report
are the skeleton's, written once here. `TunedRecipe` adds what every stage that starts from a
trained model shares: the base folder and its tokenizer, bad rows, and the forgetting measurement
on the pretraining text.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset

from pipelines.manifest import stage_fingerprint, write_manifest
from training.options import AlignSection, TrainSection
from training.stage import (TrainingInputError, check_output_folder, complete_model_dir, finished, folder_fingerprint,
                            model_stage_inputs, require, start_stage, write_bad_rows)


@dataclass
class Outcome:
    """What a trained stage reports: the report's data table, its extra sections and samples, the
    manifest's counts and extra keys (beside `summary`), and the final log line."""

    data: dict[str, Any]
    counts: dict[str, Any]
    line: str
    extra: dict[str, dict] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


class Recipe:
    """A training stage. Subclasses set `stage` and `title` and supply the methods below; the
    attributes `cfg`, `train_set` and `val_set` are set by `prepare`."""

    stage: str
    title: str

    def __init__(self, section: TrainSection, out: str, log: Callable[[str], None] = print):
        self.section, self.out = section, out
        self.say = log
        self.cfg = None
        self.train_set: Optional[Dataset] = None
        self.val_set: Optional[Dataset] = None

    def inputs(self) -> dict:
        """Every input folder and file, checked to exist (TrainingInputError) and fingerprinted."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Read and check the data, settings and model; a mistake is a TrainingInputError raised
        before the stage folder (and its checkpoints) is touched."""
        raise NotImplementedError

    def model_to_train(self, rank: int) -> torch.nn.Module:
        """The module the engine trains, once the ranks are joined (rank 0 measures the starting
        point here)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The line said before training starts."""
        raise NotImplementedError

    def trainer_kwargs(self) -> dict[str, Any]:
        """Trainer keywords: tokens_per_sample and flops_per_token always; loss_fn, collate,
        count_fn and perplexity when not a next-token loss over stacked windows."""
        raise NotImplementedError

    def attach(self, trainer) -> None:
        """Anything computed through the built engine before training (DPO's reference)."""

    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        """Write the trained weights: (the self-contained model folder, manifest outputs)."""
        raise NotImplementedError

    def tokenizer_dir(self) -> str:
        """The folder whose tokenizer goes beside the saved weights."""
        raise NotImplementedError

    def chat_template(self) -> Optional[dict]:
        """The chat template the model was tuned on (None: carried over from the tokenizer folder)."""
        return None

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        """Measure the saved model (rank 0) and say what to report; may add keys to `summary`."""
        raise NotImplementedError


def run_recipe(recipe: Recipe, force: bool = False, until_step: Optional[int] = None, progress: bool = True) -> dict:
    """Run a training stage: its manifest once finished, the trainer's summary when it stopped
    early (--until-step), or the earlier manifest when it is up to date.

    Raises TrainingInputError (inputs or settings, before the folder is touched), StageInterrupted
    (a signal: checkpointed and stopped)."""
    import torch.distributed as dist

    from training.hf_export import export_stage_model
    from training.loop import Trainer
    from training.report import write_training_report

    section, out, stage = recipe.section, recipe.out, recipe.stage
    inputs = recipe.inputs()
    check_output_folder(stage, out, inputs)
    config = section.model_dump(mode="json")
    fingerprint = stage_fingerprint(stage, config, inputs)
    done = finished(stage, out, fingerprint, force, recipe.say)
    if done:
        return done
    started = time.monotonic()  # the stage's own time: reading, evaluations before and after, export
    recipe.prepare()
    rank, say = start_stage(stage, out, fingerprint, force, recipe.say)
    recipe.say = say
    model = recipe.model_to_train(rank)
    say(recipe.describe())
    trainer = Trainer(model, section, out, recipe.train_set, recipe.val_set, fingerprint=fingerprint, log=say,
                      **recipe.trainer_kwargs())
    recipe.attach(trainer)
    summary, state = trainer.run(stage, recipe.cfg, until_step, progress)
    if not summary["finished"]:
        return summary
    manifest: dict = {}
    if rank == 0:
        final_dir, outputs = recipe.save(state)
        complete_model_dir(recipe.tokenizer_dir(), final_dir, recipe.chat_template())
        outputs = {**outputs, "metrics": "metrics.jsonl", "report": "report.md"}
        if section.export_hf and export_stage_model(final_dir, os.path.join(out, "hf"), say):
            outputs["hf"] = "hf/"
        outcome = recipe.evaluate(summary, final_dir)
        write_training_report(out, recipe.title, section, recipe.cfg, summary, outcome.samples, outcome.data, outcome.extra)
        manifest = write_manifest(out, stage, fingerprint, config, inputs, outcome.counts, {"wall_s": summary["wall_s"], "total_s": time.monotonic() - started},
                                  outputs, {"summary": summary, **outcome.manifest})
        say(outcome.line)
    dist.barrier()
    return manifest


class TunedRecipe(Recipe):
    """A stage that starts from a trained model folder (SFT, LoRA, reward, DPO): the folder's
    tokenizer, the stage's data files, its bad rows, and forgetting (the next-token loss on the
    pretraining validation text before and after, training/forgetting.py)."""

    section: AlignSection

    def __init__(self, section: AlignSection, base_dir: str, out: str, log: Callable[[str], None] = print):
        super().__init__(section, out, log)
        self.base_dir = base_dir
        self.bad: list = []
        self.bad_counts: dict[str, int] = {}
        self.pack_dir: Optional[str] = None
        self.pretrain_val: Optional[Dataset] = None
        self.forget_before: Optional[dict] = None

    def data_files(self) -> dict[str, Optional[str]]:
        """The data files the stage reads by role ("train", "heldout", ...; None = not given)."""
        return {"train": self.section.train_file, "heldout": self.section.heldout_file}

    def inputs(self) -> dict:
        from training.forgetting import pretrain_data_dir

        inputs = model_stage_inputs(self.stage, self.base_dir, self.data_files())
        require(os.path.join(self.base_dir, "llmpipe_tokenizer.json"), "tokenizer beside the base model")
        mixed_from = pretrain_data_dir(self.section.pretrain_data, self.out) if getattr(self.section, "pretrain_mix", 0) else None
        if mixed_from and os.path.isdir(mixed_from):  # replayed pretraining text is training data too
            inputs["pretrain_data"] = folder_fingerprint(mixed_from)
        return inputs

    def load_tokenizer(self, train_on_prompt: bool = False) -> None:
        """The base folder's tokenizer, the chat template over it and the padding id."""
        from llmdata.chat import ChatTemplate
        from llmdata.tokenizer_io import BPETokenizer

        self.tokenizer = BPETokenizer.load(self.base_dir)
        self.template = ChatTemplate(self.tokenizer, train_on_prompt)
        self.pad = self.tokenizer.special_ids["<|pad|>"]

    def load_base(self, length_key: str) -> torch.nn.Module:
        """The base model, loaded after seeding every RNG with the section's seed; a section length
        (`seq_len` or `max_len`, named by `length_key`) beyond the model's max_seq_len is a
        TrainingInputError."""
        from training.export import load_model
        from training.loop import seed_everything

        seed_everything(self.section.seed)
        model = load_model(self.base_dir)
        length = getattr(self.section, length_key)
        if length > model.cfg.max_seq_len:
            raise TrainingInputError(f"{self.stage}: {length_key} {length} is beyond the model's max_seq_len "
                                     f"{model.cfg.max_seq_len}")
        return model

    def pretrain_text(self, train_set: Optional[Dataset]) -> Optional[Dataset]:
        """Find the pretraining text for forgetting (and, with `pretrain_mix`, mix it into the
        training set, which is returned)."""
        from training.forgetting import pretrain_data

        self.pack_dir, self.pretrain_val, train_set = pretrain_data(self.stage, self.section, self.out, self.tokenizer,
                                                                    train_set)
        return train_set

    def measure_forgetting_before(self, model: torch.nn.Module, rank: int) -> None:
        from training.forgetting import pretrain_val_loss

        if rank == 0 and self.pretrain_val is not None:
            self.forget_before = pretrain_val_loss(model, self.pretrain_val, self.section.forgetting_samples)

    def forgetting_after(self, model: torch.nn.Module) -> Optional[dict]:
        """forgetting_summary of the trained model (None when not measured)."""
        from training.forgetting import forgetting_summary, pretrain_val_loss

        after = pretrain_val_loss(model, self.pretrain_val, self.section.forgetting_samples) if self.forget_before else None
        return forgetting_summary(self.forget_before, after, self.pack_dir)

    def tokenizer_dir(self) -> str:
        return self.base_dir

    def chat_template(self) -> Optional[dict]:
        return self.template.to_json()

    def final_dir(self) -> str:
        return os.path.join(self.out, "final")

    def data_quality(self, used_label: str, used: int, rows: dict[str, Any], held_bad: list,
                     more: tuple[tuple[str, Optional[str], list], ...] = ()) -> tuple[dict, dict]:
        """Write bad_rows.jsonl (the training file's bad rows, then the held-out file's, then those of
        `more`'s (label, file, bad rows), each with its file); (the report's "Data quality" table,
        with a row per label of `more`, the manifest's counts of the training file's)."""
        self.bad_counts = write_bad_rows(self.out, [(self.section.train_file, self.bad),
                                                    (self.section.heldout_file, held_bad),
                                                    *((path, bad) for _, path, bad in more)])
        table = {"rows read": used + len(self.bad), used_label: used,
                 **{f"bad rows: {k}": v for k, v in sorted(self.bad_counts.items())}, **rows,
                 "held-out bad rows": len(held_bad), **{label: len(bad) for label, _, bad in more}}
        counts = {"input": used + len(self.bad), "used": used,
                  "bad": {"total": len(self.bad), "by_reason": dict(sorted(self.bad_counts.items()))}}
        return table, counts
