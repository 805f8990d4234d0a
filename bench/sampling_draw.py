"""The sampler's draw (training/model.py `categorical_draw`, inverse CDF) beside torch.multinomial,
its anchor, on the same probabilities: milliseconds per call, and the total-variation distance of
each one's empirical frequencies from the probabilities (docs/alignment.md, "More steps at the same cost"),
the probability mass a float32 running sum leaves out, and the same draw with a float64 sum
(`categorical_draw`'s docstring).

    python bench/sampling_draw.py [rows] [vocab] [threads]      (default 256 8192 2)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from training.model import categorical_draw  # noqa: E402


def float64_draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """categorical_draw's inverse CDF with a float64 cumulative sum (the alternative its docstring weighs)."""
    cdf = probs.double().cumsum(-1)
    u = torch.rand(probs.size(0), 1, generator=generator, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_max(probs.size(-1) - 1).squeeze(-1)


def main() -> None:
    rows, vocab, threads = (int(a) for a in (sys.argv[1:] + ["256", "8192", "2"][len(sys.argv) - 1:])[:3])
    torch.set_num_threads(threads)
    probs = (torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 3).softmax(-1)
    draws = {"torch.multinomial": lambda g: torch.multinomial(probs, 1, generator=g).squeeze(-1),
             "categorical_draw": lambda g: categorical_draw(probs, g),
             "float64 cumsum": lambda g: float64_draw(probs, g)}
    for name, draw in draws.items():
        g = torch.Generator().manual_seed(1)
        draw(g)
        start = time.perf_counter()
        calls = 50
        for _ in range(calls):
            draw(g)
        ms = (time.perf_counter() - start) / calls * 1000
        one = probs[:1].expand(20_000, -1).contiguous()  # the first row drawn 20,000 times
        got = {"torch.multinomial": lambda: torch.multinomial(one, 1, generator=g).squeeze(-1),
               "categorical_draw": lambda: categorical_draw(one, g), "float64 cumsum": lambda: float64_draw(one, g)}[name]()
        freq = torch.bincount(got, minlength=vocab).double() / got.numel()
        tv = 0.5 * float((freq - probs[0].double()).abs().sum())
        print(f"{name:18s} {ms:7.2f} ms per call of {rows} x {vocab} ({threads} threads); total variation over 20,000 draws {tv:.3f}")
    for width in (8192, 128_000):  # the mass a float32 running sum cannot reach: tokens that add nothing to it
        for scale in (1.0, 2.5, 4.0):
            flat = (torch.randn(64, width, generator=torch.Generator().manual_seed(0)) * scale).softmax(-1)
            cdf = flat.cumsum(-1)
            step = torch.diff(cdf, dim=-1, prepend=torch.zeros(64, 1))
            lost = ((step <= 0) & (flat > 0)).float().mul(flat).sum(-1)
            print(f"float32 cumulative sum over {width:,} tokens (logits ~ N(0, {scale:g}^2)): mass never drawn "
                  f"{float(lost.mean()):.1e} per row on average, {float(lost.max()):.1e} at most (64 rows)")


if __name__ == "__main__":
    main()
