"""The packed token files as a PyTorch dataset, in a seeded order that can be resumed exactly.

Each sample holds input ids, labels (-100 on padding), position ids restarting at each document
piece, and the piece index of each position, from which attention is kept inside documents.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from llmdata.packing import IndexedDataset, PackPlan, sample_arrays
from training.stage import TrainingInputError


def read_pack_info(folder: str) -> dict:
    """A pack stage's shards.json, with seq_len, pad_id and eot_id checked to be numbers: a damaged
    file is one line, before anything is trained."""
    path = os.path.join(folder, "shards.json")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        checked = {key: int(info[key]) for key in ("seq_len", "pad_id", "eot_id")}
        if checked["seq_len"] < 1:
            raise ValueError(f"seq_len {checked['seq_len']}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TrainingInputError(f"{path} is not a pack stage's shards.json ({type(err).__name__}: {err})") from None
    return {**info, **checked}


class PackedDataset(Dataset):
    """All shards of one split (`train` or `val`) of a pack stage folder."""

    def __init__(self, folder: str, split: str = "train"):
        info = read_pack_info(folder)
        self.pad_id = int(info["pad_id"])
        self.seq_len = int(info["seq_len"])
        prefixes = [idx[: -len(".idx")] for idx in sorted(glob.glob(os.path.join(folder, f"{split}-*.idx")))]
        if not prefixes:
            raise FileNotFoundError(f"no {split}-*.idx files in {folder}")
        self.shards: list[tuple[IndexedDataset, PackPlan]] = [self._open(prefix) for prefix in prefixes]
        sizes = [plan.samples for _, plan in self.shards]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def _open(self, prefix: str) -> tuple[IndexedDataset, PackPlan]:
        """One shard, checked whole before training starts: a damaged or mismatched file is one
        line naming it, not an error at whatever step first reads it."""
        try:
            data, plan = IndexedDataset.open(prefix), PackPlan.load(prefix + ".plan.npz")
            if plan.window != self.seq_len + 1:
                raise ValueError(f"{prefix}.plan.npz packs {plan.window - 1} tokens a sample, shards.json says {self.seq_len}")
            plan.check(data, prefix + ".plan.npz")
        except (OSError, ValueError) as err:
            raise TrainingInputError(f"unusable packed data: {err}") from None
        return data, plan

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard = int(np.searchsorted(self.offsets, i, side="right") - 1)
        data, plan = self.shards[shard]
        arrays = sample_arrays(data, plan, int(i - self.offsets[shard]), self.pad_id)
        return {k: torch.from_numpy(v) for k, v in arrays.items()}


class ResumableSampler(Sampler[int]):
    """A seeded permutation per epoch; `state_dict()` after N samples and `load_state_dict()` on a
    fresh sampler continue with exactly the samples an uninterrupted run would have seen."""

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[int]:
        while True:
            order = self._order()
            while self.position < self.size:
                i = int(order[self.position])
                self.position += 1
                yield i
            self.epoch += 1
            self.position = 0

    def __len__(self) -> int:
        return self.size

    def first_draws(self, n: int) -> set[int]:
        """The distinct indices among the first `n` a fresh sampler of this size and seed yields
        (all of them once n >= size): what a run of n samples will read."""
        if n >= self.size:
            return set(range(self.size))
        return {int(i) for i in ResumableSampler(self.size, self.seed, self.shuffle)._order()[:n]}

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        if state["size"] != self.size or state["seed"] != self.seed:
            raise ValueError("sampler state was saved for another dataset size or seed")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
