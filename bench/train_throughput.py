"""Training throughput: llmpipe's DeepSpeed trainer against a plain PyTorch loop, side by side.

Same model (a preset), same packed batches in the same order, same optimizer (AdamW with the same
decay groups), schedule and gradient clipping, same threads. The DeepSpeed side is the trainer's
own step (`Trainer._train_step`: engine forward, backward, step); the plain side is
forward / backward / clip / step / zero_grad. Rounds alternate between the two so drift in the
machine's speed hits both; the first steps of each round are warm-up and not timed.

    python bench/train_throughput.py                       # CPU: tiny preset, ZeRO 0 and 1
    python bench/train_throughput.py --preset 125m --seq-len 2048 --micro-batch 8 --zero 1 2 --precision bf16 --compile

MFU = tokens/s x FLOPs per token (`ModelConfig.flops_per_token`) / the device's peak
(`training.metrics.peak_tflops`: the dense bf16 datasheet figure on a known GPU, a measured fp32
matmul on a CPU).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import append_results, machine_line  # noqa: E402
from training.engine import lr_factor, param_groups  # noqa: E402
from training.loop import Trainer, causal_lm_loss, stack  # noqa: E402
from training.model import Transformer, load_preset  # noqa: E402
from training.options import TrainSection  # noqa: E402


class RandomPacked(torch.utils.data.Dataset):
    """Packed-looking samples (documents of random length, positions restarting) when no pack
    stage output is given: throughput does not depend on the token values."""

    def __init__(self, n: int, seq_len: int, vocab: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            ids = rng.integers(0, vocab, seq_len + 1)
            cuts = np.sort(rng.choice(np.arange(1, seq_len), size=3, replace=False))
            doc = np.searchsorted(cuts, np.arange(seq_len), side="right")
            starts = np.concatenate([[0], cuts])
            pos = np.arange(seq_len) - starts[doc]
            self.items.append({"input_ids": torch.tensor(ids[:-1]), "labels": torch.tensor(ids[1:]),
                               "position_ids": torch.tensor(pos), "doc_ids": torch.tensor(doc)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def plain_steps(model, section: TrainSection, data, steps: int, warmup: int) -> float:
    """Tokens/s of a plain PyTorch loop over the same batches."""
    from training.data import ResumableSampler

    opt = torch.optim.AdamW(param_groups(model, section.weight_decay), lr=section.lr, betas=section.betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, section))
    order = iter(ResumableSampler(len(data), seed=section.seed))
    dtype = torch.bfloat16 if section.precision == "bf16" else None
    device = next(model.parameters()).device
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        for _ in range(section.grad_accum):
            batch = {k: v.to(device) for k, v in stack([data[next(order)] for _ in range(section.micro_batch)]).items()}
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                total, count = causal_lm_loss(model, batch)
            (total / count.clamp(min=1) / section.grad_accum).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), section.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    tokens = steps * section.grad_accum * section.micro_batch * data[0]["input_ids"].numel()
    return tokens / (time.perf_counter() - start)


def deepspeed_steps(trainer: Trainer, steps: int, warmup: int) -> float:
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        trainer._train_step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return trainer.tokens_per_step * steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--zero", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--attention", default="auto", choices=["auto", "sdpa"],
                    help="packed batches: auto = FlexAttention on a GPU, sdpa = dense boolean mask")
    ap.add_argument("--compile", action="store_true", help="torch.compile each block, both sides")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--results", default="bench/RESULTS.md")
    args = ap.parse_args()

    from training.engine import setup_distributed

    setup_distributed()
    cfg = load_preset(args.preset, vocab_size=args.vocab, max_seq_len=args.seq_len, attention=args.attention)
    data = RandomPacked(256, args.seq_len, args.vocab)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    figures: dict[str, list[float]] = {"plain": []}
    trainers = {}
    for zero in args.zero:
        section = TrainSection(micro_batch=args.micro_batch, zero_stage=zero, precision=args.precision, warmup_steps=10,
                               max_steps=10**6, lr=1e-3, min_lr=1e-4, tensorboard=False, compile=args.compile)
        torch.manual_seed(0)
        trainers[zero] = Trainer(Transformer(cfg), section, tempfile.mkdtemp(), data, None, args.seq_len,
                                 cfg.flops_per_token(args.seq_len), log=lambda _m: None)
        figures[f"zero{zero}"] = []
    base = TrainSection(micro_batch=args.micro_batch, zero_stage=0, precision=args.precision, warmup_steps=10,
                        max_steps=10**6, lr=1e-3, min_lr=1e-4)
    torch.manual_seed(0)
    plain_model = Transformer(cfg).to(device)
    if args.compile:
        for block in plain_model.blocks:
            block.compile()
    for r in range(args.rounds):
        figures["plain"].append(plain_steps(plain_model, base, data, args.steps, args.warmup))
        for zero, trainer in trainers.items():
            figures[f"zero{zero}"].append(deepspeed_steps(trainer, args.steps, args.warmup))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} tok/s" for k, v in figures.items()), flush=True)

    plain = float(np.median(figures["plain"]))
    import deepspeed

    from training.metrics import peak_tflops

    peak, peak_source = peak_tflops(None)
    flops = cfg.flops_per_token(args.seq_len)

    def mfu(tokens_per_s: float) -> str:
        return f"{100 * tokens_per_s * flops / (peak * 1e12):.1f}%" if peak else "n/a"

    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [
        f"\n## Training step throughput: DeepSpeed trainer vs plain PyTorch ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `python bench/train_throughput.py {' '.join(sys.argv[1:])}`. Model: preset {args.preset} "
        f"({cfg.n_params() / 1e6:.2f}M parameters, vocab {args.vocab}), {args.micro_batch} x {args.seq_len} tokens per "
        f"step, packed documents (block-diagonal mask, attention {args.attention}), {args.precision}, AdamW + clipping"
        f"{', blocks compiled' if args.compile else ''}. {where}; torch "
        f"{torch.__version__}, deepspeed {deepspeed.__version__}. {machine_line()} Median of {args.rounds} alternating "
        f"rounds of {args.steps} timed steps. MFU: {flops / 1e6:.0f} MFLOP per token against {peak:.1f} TFLOP/s "
        f"({peak_source}).\n",
        "| trainer | tokens/s (median) | MFU | rounds | vs plain PyTorch |",
        "|---|---:|---:|---|---:|",
        f"| plain PyTorch loop | {plain:,.0f} | {mfu(plain)} | {', '.join(f'{v:,.0f}' for v in figures['plain'])} | 1.00x |",
    ]
    for zero in args.zero:
        vals = figures[f"zero{zero}"]
        med = float(np.median(vals))
        lines.append(f"| llmpipe Trainer, DeepSpeed ZeRO {zero} | {med:,.0f} | {mfu(med)} | {', '.join(f'{v:,.0f}' for v in vals)} | "
                     f"{med / plain:.2f}x (overhead {100 * (1 - med / plain):+.1f}%) |")
    append_results(args.results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
