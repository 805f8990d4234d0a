"""What a training run records: JSONL metrics (and TensorBoard), MFU, and the loss-curve PNG.

MFU (model FLOPs utilization) = tokens/s x FLOPs per token / (devices x peak FLOP/s), with
FLOPs per token from `ModelConfig.flops_per_token` (nanoGPT/PaLM: 6N + 12·L·H·Q·T, no
recomputation counted). The peak is, in order: `peak_tflops` from the config; the dense bf16
peak of a known GPU (`gpu_peak_tflops`, by exact model and form factor); on a CPU, an fp32 matrix multiply measured at start-up, so CPU MFU says how
close the trainer runs to what this CPU's matmul reaches, not to a datasheet.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

#: Dense peak TFLOP/s (bf16 tensor cores, no sparsity; V100 has no bf16: its fp16 peak) from the
#: NVIDIA datasheets, as (pattern over `torch.cuda.get_device_name()`, TFLOP/s, part), most specific
#: first. Names differ by form factor ("NVIDIA H100 80GB HBM3" is the SXM part, "NVIDIA H100 PCIe",
#: "NVIDIA H100 NVL"), and one model's name can hold another's ("L40" holds "L4", "GH200" holds
#: "H200"), so each pattern matches a whole model name, not a substring.
GPU_PEAK_TFLOPS: tuple[tuple[str, float, str], ...] = (
    (r"\bGH200\b", 989.0, "GH200"),
    (r"\bH200\b.*\bNVL\b", 835.0, "H200 NVL"),
    (r"\bH200\b", 989.0, "H200 SXM"),
    (r"\bH100\b.*\bNVL\b", 835.0, "H100 NVL"),
    (r"\bH100\b.*\bPCIe\b", 756.0, "H100 PCIe"),
    (r"\bH100\b", 989.0, "H100 SXM"),
    (r"\bH800\b.*\bPCIe\b", 756.0, "H800 PCIe"),
    (r"\bH800\b", 989.0, "H800 SXM"),
    (r"\bA100\b", 312.0, "A100 (SXM and PCIe)"),
    (r"\bA800\b", 312.0, "A800"),
    (r"\bL40S\b", 362.0, "L40S"),
    (r"\bL40\b", 181.0, "L40"),
    (r"\bL4\b", 121.0, "L4"),
    (r"\bA10\b", 125.0, "A10"),
    (r"\bV100\b.*\bPCIE\b", 112.0, "V100 PCIe (fp16)"),
    (r"\bV100\b", 125.0, "V100 SXM2 (fp16)"),
)


def gpu_peak_tflops(name: str) -> Optional[tuple[float, str]]:
    """(dense peak TFLOP/s, the part it is the datasheet figure of) for a device name as
    `torch.cuda.get_device_name()` gives it, or None for a device not in GPU_PEAK_TFLOPS (among
    them the A10G, whose datasheet NVIDIA does not publish: set `peak_tflops`). Matching is
    case-insensitive and by whole model names ("NVIDIA L40" is not an L4)."""
    import re

    for pattern, tflops, part in GPU_PEAK_TFLOPS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return tflops, part
    return None


def measure_cpu_tflops(seconds: float = 0.5, n: int = 1024) -> float:
    """fp32 matmul TFLOP/s on this process's threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * n**3 * runs / (time.perf_counter() - start) / 1e12


def peak_tflops(configured: Optional[float]) -> tuple[float, str]:
    """Peak TFLOP/s per device and where the figure comes from."""
    if configured:
        return configured, "config peak_tflops"
    from deepspeed.accelerator import get_accelerator

    accel = get_accelerator()
    if accel.device_name() != "cpu":
        import torch

        name = torch.cuda.get_device_name() if torch.cuda.is_available() else accel.device_name()
        known = gpu_peak_tflops(name)
        if known:
            return known[0], f"{name}: {known[1]} dense datasheet peak"
        return 0.0, f"unknown device {name!r}: set peak_tflops"
    measured = measure_cpu_tflops()
    return measured, "fp32 1024x1024 matmul measured on this CPU"


class MetricsLog:
    """Appends one JSON object per event to metrics.jsonl, mirrored to TensorBoard when asked.

    On resume from step N, records after N are dropped first: those steps are trained again.
    """

    def __init__(self, folder: str, tensorboard: bool, resume_step: int = 0, log=print):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "metrics.jsonl")
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        with open(self.path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(os.path.join(folder, "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
            except ImportError:
                log("metrics: the tensorboard package is not installed; metrics go to metrics.jsonl only")

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            step = record["step"]
            for key, value in record.items():
                if key not in ("step", "event") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{record.get('event', 'train')}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_loss(metrics: list[dict], path: str, title: str) -> None:
    """Training loss (raw and Gaussian-smoothed) and validation loss against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.ndimage import gaussian_filter1d

    train = [(r["step"], r["loss"]) for r in metrics if r.get("event") == "train"]
    val = [(r["step"], r["val_loss"]) for r in metrics if r.get("event") == "eval"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        steps, losses = zip(*train)
        ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=1, label="train (per step)")
        if len(losses) > 5:
            ax.plot(steps, gaussian_filter1d(losses, sigma=max(len(losses) / 50, 1.0)), color="tab:blue", label="train (smoothed)")
    if val:
        steps, losses = zip(*val)
        ax.plot(steps, losses, "o-", color="tab:orange", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
