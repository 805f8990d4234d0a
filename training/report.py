"""report.md of a training stage: model, data, run, throughput and MFU, loss curve, samples."""
from __future__ import annotations

import os
from typing import Any, Optional

from llmdata.display import shown, table_cell
from training.metrics import plot_loss, read_metrics
from training.model import ModelConfig
from training.options import TrainSection


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return table_cell(str(value))


def table(rows: dict[str, Any]) -> list[str]:
    return ["| | |", "|---|---:|", *(f"| {table_cell(str(k))} | {_fmt(v)} |" for k, v in rows.items()), ""]


def write_training_report(out: str, title: str, section: TrainSection, cfg: ModelConfig, summary: dict,
                          samples: list[dict], data: dict[str, Any], extra: Optional[dict[str, dict]] = None) -> str:
    metrics = read_metrics(os.path.join(out, "metrics.jsonl"))
    plot_loss(metrics, os.path.join(out, "loss.png"), f"{title}: loss")
    evals = [r for r in metrics if r.get("event") == "eval"]
    first_train = next((r["loss"] for r in metrics if r.get("event") == "train"), None)
    mfu = summary.get("mfu")
    lines = [f"# {title}", ""]
    lines += ["## Model", ""] + table({
        "parameters": cfg.n_params(), "non-embedding parameters": cfg.n_params(embeddings=False),
        "layers x d_model": f"{cfg.n_layers} x {cfg.d_model}", "heads (kv heads)": f"{cfg.n_heads} ({cfg.n_kv_heads})",
        "positions": cfg.position, "norm": cfg.norm, "vocabulary": cfg.vocab_size,
        "training FLOPs per token": cfg.flops_per_token(int(data.get("sequence length", cfg.max_seq_len)))})
    lines += ["## Data", ""] + table(data)
    lines += ["## Run", ""] + table({
        "optimizer steps": summary["steps"], "global batch (sequences)": summary["global_batch"],
        "ranks": summary["ranks"], "ZeRO stage": section.zero_stage, "pipeline stages": section.pipeline_stages,
        "tokens seen": summary["tokens"], "epochs": summary["epochs"], "first training loss": first_train,
        "last training loss (mean of last 10 steps)": summary.get("train_loss_last"),
        "validation loss": summary.get("val_loss"),
        **({"validation perplexity": summary["val_ppl"]} if "val_ppl" in summary else {}),
        "optimizer steps that did not train (non-finite loss or skipped gradients)"
        + (f" since step {summary['failed_from']}" if summary.get("failed_from") else ""): summary.get("failed_steps", 0),
        "wall time (s)": summary["wall_s"], "resumed from step": summary.get("resumed_from", 0)})
    lines += ["## Throughput", "",
              "Tokens per second count every position processed (padding included), averaged over the steps "
              "after the first. MFU = tokens/s x FLOPs per token / (ranks x peak FLOP/s), FLOPs per token by "
              "6N + 12·L·H·Q·T (nanoGPT/PaLM), no recomputation counted.", ""] + table({
        "tokens/s (all ranks)": summary["tokens_per_s"],
        "peak TFLOP/s per device": summary.get("peak_tflops_per_device"), "peak from": summary.get("peak_source"),
        "MFU": f"{100 * mfu:.1f}%" if mfu is not None else "n/a"})
    for heading, rows in (extra or {}).items():
        lines += [f"## {heading}", ""] + table(rows)
    lines += ["## Loss", "", "![loss](loss.png)", ""]
    if evals:
        if "val_ppl" in evals[-1]:
            lines += ["| step | validation loss | perplexity |", "|---:|---:|---:|"]
            lines += [f"| {r['step']} | {r['val_loss']:.4f} | {r['val_ppl']:.2f} |" for r in evals] + [""]
        else:
            lines += ["| step | validation loss |", "|---:|---:|"]
            lines += [f"| {r['step']} | {r['val_loss']:.4f} |" for r in evals] + [""]
    if samples:
        lines += ["## Samples", ""]
        for s in samples:
            lines += [f"**\"{shown(s['prompt'], one_line=True)}\"** →", "", "```",
                      shown(s["prompt"] + s["completion"]).replace("```", "'''"), "```", ""]
    path = os.path.join(out, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def percent(x: Optional[float]) -> str:
    """A share as "42.5%" ("n/a" for None), as the stages' final lines say it."""
    return "n/a" if x is None else f"{100 * x:.1f}%"
