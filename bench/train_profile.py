"""Where a training step's time goes: torch.profiler over a few steps of the llmpipe Trainer.

Prints the step's wall time, the GPU's busy time within it (the kernels' sum), and the kernels
and CPU operators that cost the most. Used to find what keeps MFU down on a GPU.

    python bench/train_profile.py --preset 125m --micro-batch 8 --compile
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.train_throughput import RandomPacked  # noqa: E402
from training.loop import Trainer  # noqa: E402
from training.model import Transformer, load_preset  # noqa: E402
from training.options import TrainSection  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="125m")
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--zero", type=int, default=1)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rows", type=int, default=25)
    args = ap.parse_args()

    cfg = load_preset(args.preset, vocab_size=args.vocab, max_seq_len=args.seq_len)
    data = RandomPacked(64, args.seq_len, args.vocab)
    section = TrainSection(micro_batch=args.micro_batch, zero_stage=args.zero, precision=args.precision,
                           warmup_steps=10, max_steps=10**6, tensorboard=False, compile=args.compile)
    trainer = Trainer(Transformer(cfg), section, tempfile.mkdtemp(), data, None, args.seq_len,
                      cfg.flops_per_token(args.seq_len), log=lambda _m: None)
    for _ in range(5):
        trainer._train_step()
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer._train_step()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - start) / args.steps
    events = prof.key_averages()
    gpu = sum(e.self_device_time_total for e in events) / 1e3 / args.steps
    print(f"step wall {wall * 1e3:.1f} ms, GPU kernels {gpu:.1f} ms per step "
          f"({trainer.tokens_per_step / wall:,.0f} tokens/s)")
    print(events.table(sort_by="self_device_time_total", row_limit=args.rows, max_name_column_width=60))
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=60))


if __name__ == "__main__":
    main()
