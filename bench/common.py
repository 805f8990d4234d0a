"""What every benchmark script shares: the machine line, appending to bench/RESULTS.md, and the
sampling options of the scripts that sample a model's answers on held-out prompts."""
from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

HEADER = "# Benchmark results\n\nEach section is written by the command it names, on the machine it names.\n"


def machine_line() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"Machine: {os.cpu_count()} cores, {model}, Python {platform.python_version()}."


def append_results(path: str, text: str) -> None:
    results = Path(path)
    if not results.exists():
        results.write_text(HEADER)
    with results.open("a") as f:
        f.write(text)
    print(text)


def workers_flag(workers: list[int]) -> str:
    """The `--workers` option as the command line gave it, or "" for the default (1 and 2)."""
    return "" if workers == [1, 2] else " --workers " + " ".join(map(str, workers))


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """--model, --heldout, --limit, --n, --temperature, --max-new-tokens, --seed: N answers per
    held-out prompt, drawn as best-of-N does (bench/best_of_vote.py, bench/sft_errors.py)."""
    p.add_argument("--model", required=True, help="a stage's final/ folder")
    p.add_argument("--heldout", required=True, help="held-out conversations (jsonl)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
