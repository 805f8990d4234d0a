"""Reward-model learning-rate sweep in a plain PyTorch loop (no DeepSpeed), for choosing the demo's
reward settings quickly: held-out pairwise accuracy, overall and per task, six times per run.

    python bench/reward_sweep.py --lr 2e-3 5e-4 --steps 1200
    python bench/reward_sweep.py --lr 5e-4 --train /tmp/t15/preferences/train.jsonl --steps 2000
    python bench/reward_sweep.py --lr 5e-4 --trim 1    # read the reward at <|end|>, not end-of-text

Needs a finished demo run (runs/demo/06-sft/final) and `llmpipe sample-data` output.
"""
from __future__ import annotations

import argparse
import math
import random
import time

import torch

from llmdata.chat import ChatTemplate
from llmdata.tokenizer_io import BPETokenizer
from training.export import load_model
from training.reward import RewardModel, pad_pairs, pair_loss, pair_metrics, read_pairs


def sweep(lr: float, steps: int, train_file: str, heldout_file: str, base: str, trim: int, batch: int = 16) -> None:
    torch.manual_seed(0)
    tok = BPETokenizer.load(base)
    template, pad = ChatTemplate(tok), tok.special_ids["<|pad|>"]
    cut = lambda pairs: [(c[: len(c) - trim], r[: len(r) - trim]) for c, r in pairs]  # noqa: E731
    pairs, _, _, _ = read_pairs(train_file, template, 64)
    held, tasks, _, _ = read_pairs(heldout_file, template, 64)
    pairs, held = cut(pairs), cut(held)
    model = RewardModel(load_model(base))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s / steps, 1)))))
    rng, start = random.Random(0), time.time()
    for step in range(1, steps + 1):
        model.train()
        idx = [rng.randrange(len(pairs)) for _ in range(batch)]
        loss = pair_loss(model(**pad_pairs([{"chosen": pairs[i][0], "rejected": pairs[i][1]} for i in idx], pad)), 0.0, 0.0).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(steps // 6, 1) == 0:
            m = pair_metrics(model, held, tasks, pad)
            by_task = ", ".join(f"{t} {100 * v:.0f}%" for t, v in m["by_task"].items())
            print(f"lr {lr:g} step {step}: held-out accuracy {100 * m['accuracy']:.1f}% ({by_task}), "
                  f"{time.time() - start:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", type=float, nargs="+", default=[2e-3, 5e-4])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--train", default="data/demo/preferences/train.jsonl")
    ap.add_argument("--heldout", default="data/demo/preferences/heldout.jsonl")
    ap.add_argument("--base", default="runs/demo/06-sft/final")
    ap.add_argument("--trim", type=int, default=0, help="drop this many final tokens (1: read at <|end|>)")
    args = ap.parse_args()
    for lr in args.lr:
        sweep(lr, args.steps, args.train, args.heldout, args.base, args.trim)


if __name__ == "__main__":
    main()
