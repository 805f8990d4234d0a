"""Reward-model learning-rate sweep in a plain PyTorch loop (no DeepSpeed), for choosing the demo's
reward settings quickly: held-out pairwise accuracy, overall and per task, six times per run.

    python bench/reward_sweep.py --lr 2e-3 5e-4 --steps 1200
    python bench/reward_sweep.py --lr 5e-4 --train /tmp/t15/preferences/train.jsonl --steps 2000
    python bench/reward_sweep.py --lr 5e-4 --trim 1    # read the reward at <|end|>, not end-of-text
    python bench/reward_sweep.py --lr 5e-4 --lm-coef 1.0    # GRM: next-token loss on the chosen side too

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
from training.reward import PairSet, RewardModel, pad_pairs, pair_loss, pair_metrics, read_pairs


def sweep(lr: float, steps: int, train_file: str, heldout_file: str, base: str, trim: int, lm_coef: float,
          batch: int = 16) -> None:
    torch.manual_seed(0)
    tok = BPETokenizer.load(base)
    template, pad = ChatTemplate(tok), tok.special_ids["<|pad|>"]
    cut = lambda side: tuple(x[: len(x) - trim] for x in side)  # noqa: E731
    pairs, _, _, _ = read_pairs(train_file, template, 64, masks=True)
    held, tasks, _, _ = read_pairs(heldout_file, template, 64, masks=True)
    # (ids, mask) sides give the chosen side next-token labels; bare ids only the pairwise loss
    pairs = PairSet([(cut(c), cut(r)) if lm_coef else (cut(c)[0], cut(r)[0]) for c, r in pairs])
    held = [(cut(c)[0], cut(r)[0]) for c, r in held]
    model = RewardModel(load_model(base), lm_head=lm_coef > 0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s / steps, 1)))))
    rng, start = random.Random(0), time.time()
    for step in range(1, steps + 1):
        model.train()
        out = model(**pad_pairs([pairs[rng.randrange(len(pairs))] for _ in range(batch)], pad))
        if lm_coef:
            rewards, lm_sum, lm_count = out
            loss = pair_loss(rewards, 0.0, 0.0).mean() + lm_coef * lm_sum / lm_count.clamp(min=1)
        else:
            loss = pair_loss(out, 0.0, 0.0).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(steps // 6, 1) == 0:
            m = pair_metrics(model, held, tasks, pad)
            by_task = ", ".join(f"{t} {100 * v:.0f}%" for t, v in m["by_task"].items())
            print(f"lr {lr:g} lm_coef {lm_coef:g} step {step}: held-out accuracy {100 * m['accuracy']:.1f}% ({by_task}), "
                  f"{time.time() - start:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lr", type=float, nargs="+", default=[2e-3, 5e-4])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--train", default="data/demo/preferences/train.jsonl")
    ap.add_argument("--heldout", default="data/demo/preferences/heldout.jsonl")
    ap.add_argument("--base", default="runs/demo/06-sft/final")
    ap.add_argument("--trim", type=int, default=0, help="drop this many final tokens (1: read at <|end|>)")
    ap.add_argument("--lm-coef", type=float, nargs="+", default=[0.0], help="weight of the next-token loss on the chosen side")
    args = ap.parse_args()
    for lr in args.lr:
        for lm_coef in args.lm_coef:
            sweep(lr, args.steps, args.train, args.heldout, args.base, args.trim, lm_coef)


if __name__ == "__main__":
    main()
