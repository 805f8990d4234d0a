"""What every benchmark script shares: the machine line and appending to bench/RESULTS.md."""
from __future__ import annotations

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
