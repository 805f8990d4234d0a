"""Greedy held-out exact match of a model folder computed twice: with generate's output head at
the last position only (training/model.py `logits_at`, since 5f406d4) and over every position (as
before), to tell a decoding change from a weights change (bench/RESULTS.md, run D's LoRA figure).

    python bench/lora_exact_match.py runs/demo/07-lora/merged data/demo/sft/heldout.jsonl [max_new_tokens]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmdata.chat import BadRow, ChatTemplate, read_rows  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from training.exact_match import exact_match  # noqa: E402
from training.export import load_model  # noqa: E402
from training.model import Transformer  # noqa: E402


def main() -> None:
    folder, heldout = sys.argv[1], sys.argv[2]
    max_new_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 32  # the LoRA stage's setting
    model, template = load_model(folder), ChatTemplate(BPETokenizer.load(folder))
    rows = [(it.row.get("task", "all"), it.parsed) for it in read_rows(heldout, "sft") if not isinstance(it, BadRow)]
    last_only = exact_match(model, template, rows, len(rows), max_new_tokens)
    forward = Transformer.forward

    def every_position(self, input_ids, labels=None, position_ids=None, doc_ids=None, cache=None, start=0, logits_at=None):
        out = forward(self, input_ids, labels, position_ids, doc_ids, cache, start)
        return out if logits_at is None else {"logits": out["logits"][logits_at]}

    Transformer.forward = every_position
    everywhere = exact_match(model, template, rows, len(rows), max_new_tokens)
    Transformer.forward = forward
    print(f"head at the last position: {last_only['exact_match']:.3f} {last_only['by_task']}")
    print(f"head at every position:    {everywhere['exact_match']:.3f} {everywhere['by_task']}")


if __name__ == "__main__":
    main()
