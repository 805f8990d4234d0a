"""Forgetting: what an alignment stage costs the model on its pretraining text, and replay.

Fine-tuning a small model on a narrow task set can wreck what it learned in pretraining
(catastrophic forgetting, McCloskey & Cohen 1989): every output row the task data never uses is
pushed down by the softmax, and Adam turns even tiny gradients into full-size steps. Each
alignment stage therefore measures the next-token loss on the pack stage's validation split
(the text pretraining held out) before and after training (`pretrain_val_loss`), and SFT/LoRA can
mix a share of pretraining windows into their batches (`PretrainMix`), the "pretraining mix" of
InstructGPT's PPO-ptx (Ouyang et al. 2022, eq. 2) applied to supervised fine-tuning, also called
replay.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Optional

import torch
from torch.utils.data import Dataset

from training.stage import TrainingInputError

if TYPE_CHECKING:
    from training.options import AlignSection

#: pack stage folder name inside a run (pipelines/rundir.py STAGE_FOLDERS["pack"])
PACK_FOLDER = "04-pack"


def pretrain_data_dir(configured: Optional[str], out: str) -> Optional[str]:
    """The pack stage folder whose splits stand for the pretraining text: the section's
    `pretrain_data`, else the run's 04-pack beside the stage folder `out` when there is one
    (None: forgetting is not measured)."""
    if configured:
        return configured
    beside = os.path.join(os.path.dirname(os.path.abspath(out)), PACK_FOLDER)
    return beside if os.path.exists(os.path.join(beside, "shards.json")) else None


@torch.no_grad()
def pretrain_val_loss(model: torch.nn.Module, dataset: Dataset, samples: int, micro_batch: int = 8,
                      seq_len: Optional[int] = None) -> dict:
    """Token-weighted next-token loss (nats) of a `Transformer` (training/model.py) over the first
    `samples` windows of a pack split (training.data.PackedDataset), in file order, each cut to the
    model's max_seq_len (or `seq_len`). Returns {"loss", "ppl", "tokens", "samples"}; the same
    windows for every model, so before and after are comparable. The model is left in eval mode."""
    from training.model import token_loss

    model.eval()
    device = next(model.parameters()).device
    n = min(samples, len(dataset))
    limit = seq_len or model.cfg.max_seq_len
    total, count = 0.0, 0
    for start in range(0, n, micro_batch):
        items = [dataset[i] for i in range(start, min(start + micro_batch, n))]
        batch = {k: torch.stack([it[k][:limit] for it in items]).to(device) for k in items[0]}
        logits = model(batch["input_ids"], position_ids=batch["position_ids"], doc_ids=batch["doc_ids"])["logits"]
        s, c = token_loss(logits, batch["labels"])
        total += float(s)
        count += int(c)
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "tokens": count, "samples": n}


def forgetting_summary(before: Optional[dict], after: Optional[dict], pack_dir: Optional[str]) -> Optional[dict]:
    """What the manifest and reports keep: both losses, their ratio, and where they come from."""
    if not before or not after:
        return None
    return {"pack": pack_dir, "split": "val", "tokens": after["tokens"], "before": before["loss"], "after": after["loss"],
            "ratio": after["loss"] / before["loss"] if before["loss"] else None}


def forgetting_rows(summary: Optional[dict], before_label: str, after_label: str, samples: int) -> dict:
    """Rows of a report table for `forgetting_summary`'s result; `samples` is the stage's
    forgetting_samples, which says why nothing was measured."""
    if not summary:
        why = "forgetting_samples is 0" if samples == 0 else "no pack stage folder beside this stage; set pretrain_data"
        return {"measured": f"no ({why})"}
    return {f"{before_label}: loss (nats)": summary["before"], f"{after_label}: loss (nats)": summary["after"],
            "after / before": summary["ratio"], "tokens scored": summary["tokens"], "pack folder": summary["pack"]}


def pretrain_data(stage: str, section: AlignSection, out: str, tokenizer, train_set):
    """(pack folder, its val split, the training set) for forgetting and replay: the val split is
    None when no pack folder is known (forgetting not measured); with `pretrain_mix` the training
    set becomes a PretrainMix over the pack's train split. A pack written with another tokenizer,
    or a mix without a pack folder, is a one-line error."""
    from training.data import PackedDataset, read_pack_info

    pack_dir = pretrain_data_dir(section.pretrain_data, out)
    mix = getattr(section, "pretrain_mix", 0.0)
    if pack_dir is None or not (section.forgetting_samples or mix):
        if mix:
            raise TrainingInputError(f"{stage}.pretrain_mix needs a pack stage folder: set {stage}.pretrain_data "
                                     f"(no 04-pack beside {out})")
        return None, None, train_set
    info = read_pack_info(pack_dir)
    if info["eot_id"] != tokenizer.eot_id or not 0 <= info["pad_id"] < tokenizer.vocab_size:
        raise TrainingInputError(f"{stage}: {pack_dir} was packed with another tokenizer than the base model's "
                                 f"(end-of-text id {info['eot_id']}, not {tokenizer.eot_id})")
    try:
        val = PackedDataset(pack_dir, "val") if section.forgetting_samples else None
        if mix:
            train_set = PretrainMix(train_set, PackedDataset(pack_dir, "train"), mix, train_set.seq_len)
    except FileNotFoundError as err:
        raise TrainingInputError(f"{stage}: {err}") from None
    return pack_dir, val, train_set


class PretrainMix(Dataset):
    """Task windows with pretraining windows mixed in, so that a share `mix` of the samples the
    sampler draws are pretraining text (replay; the loss is then next-token on every real token).

    Pretraining samples (PackedDataset, pack seq_len) are cut into pieces of `seq_len`; a piece
    cut inside a document keeps its positions. The task windows are repeated R times, R the
    smallest count for which the pretraining slots cover every piece once, so an epoch is R passes
    over the task data with each pretraining piece seen once; the training sampler's seeded
    permutation spreads both kinds over the batches. Indices below `R * len(task)` are task
    windows, the rest pretraining pieces."""

    def __init__(self, task: Dataset, pretrain: Dataset, mix: float, seq_len: int):
        if not 0 < mix < 1:
            raise ValueError(f"pretrain_mix {mix} is not in (0, 1)")
        self.task, self.pretrain, self.seq_len = task, pretrain, seq_len
        pack_len = int(pretrain[0]["input_ids"].numel()) if len(pretrain) else 0
        self.per_sample = max(pack_len // seq_len, 1)
        self.pieces = len(pretrain) * self.per_sample
        if not self.pieces or not len(task):
            raise ValueError("pretrain_mix needs both task windows and pretraining samples")
        ratio = mix / (1 - mix)  # pretraining slots per task window
        self.repeats = max(1, math.ceil(self.pieces / (ratio * len(task))))
        self.task_slots = self.repeats * len(task)
        self.pretrain_slots = max(1, round(self.task_slots * ratio))

    def __len__(self) -> int:
        return self.task_slots + self.pretrain_slots

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i < self.task_slots:
            return self.task[i % len(self.task)]
        piece = (i - self.task_slots) % self.pieces
        sample = self.pretrain[piece // self.per_sample]
        at = (piece % self.per_sample) * self.seq_len
        out = {k: v[at : at + self.seq_len] for k, v in sample.items()}
        if out["input_ids"].numel() < self.seq_len:  # a pack seq_len shorter than the task's: pad
            pad = self.seq_len - out["input_ids"].numel()
            fill = {"input_ids": int(getattr(self.pretrain, "pad_id", 0)), "labels": -100, "position_ids": 0, "doc_ids": -1}
            out = {k: torch.cat([v, torch.full((pad,), fill[k], dtype=v.dtype)]) for k, v in out.items()}
        return out
