"""Greedy held-out exact match of a model computed two ways, timed: the prompts of one length
answered together (training/generate.py `greedy_chat_replies`, what every stage's exact match does
since 8f1d9ed) and one prompt a call (`chat_reply`, the slow reference), with each prompt whose
answer differs and the two best first-token logits there: a near-tie that the rounding of the
batch's shape decides (README, LoRA's 70.5% / 71.0%; bench/RESULTS.md, run I).

    python bench/exact_match_batched.py runs/demo/06-sft/final data/demo/sft/heldout.jsonl [max_new_tokens] [adapter] [threads]
    python bench/exact_match_batched.py runs/demo/05-pretrain/final data/demo/sft/heldout.jsonl 32 runs/demo/07-lora/adapter

max_new_tokens defaults to 32 (the SFT and LoRA stages' setting), threads to 1. With an adapter
folder the model is the base with the adapter loaded beside it (unmerged), as the LoRA stage
evaluates it (training/finetune.py, `load_adapter_into`); "-" for none.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdata.chat import BadRow, ChatTemplate, prompt_and_reference, read_rows  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from training.export import load_model  # noqa: E402
from training.generate import Sampling, chat_reply, greedy_chat_replies  # noqa: E402
from training.lora import load_adapter_into  # noqa: E402


def main() -> None:
    folder, heldout = sys.argv[1], sys.argv[2]
    max_new_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    adapter = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    model, template = load_model(folder), ChatTemplate(BPETokenizer.load(folder))
    if adapter:
        model = load_adapter_into(model, adapter)
    model.eval()
    rows = [prompt_and_reference(it.parsed) for it in read_rows(heldout, "sft") if not isinstance(it, BadRow)]
    with torch.no_grad():
        start = time.perf_counter()
        batched = greedy_chat_replies(model, template, [context for context, _ in rows], max_new_tokens)
        middle = time.perf_counter()
        alone = [chat_reply(model, template, context, Sampling(max_new_tokens)) for context, _ in rows]
        end = time.perf_counter()

    def exact(answers: list[str]) -> float:
        return sum(a.strip() == (ref or "").strip() for a, (_, ref) in zip(answers, rows)) / len(rows)

    differ = [i for i, (a, b) in enumerate(zip(batched, alone)) if a != b]
    print(f"{len(rows)} prompts, {max_new_tokens} new tokens at most, {torch.get_num_threads()} thread(s): "
          f"prompts of one length together {exact(batched):.3f} in {middle - start:.1f} s; one prompt a call "
          f"{exact(alone):.3f} in {end - middle:.1f} s; answers that differ: {len(differ)}")
    for i in differ:
        context, reference = rows[i]
        with torch.no_grad():
            top = model(torch.tensor([template.prompt(context)]))["logits"][0, -1].topk(2)
        firsts = ", ".join(f"{template.tok.decode([int(t)])!r} {float(v):.6f}" for v, t in zip(top.values, top.indices))
        print(f"  {context[-1]['content']!r} (reference {reference!r}): together {batched[i]!r}, alone {alone[i]!r}; "
              f"first-token logits {firsts}")


if __name__ == "__main__":
    main()
