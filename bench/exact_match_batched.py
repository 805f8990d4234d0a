"""Greedy held-out exact match of a model computed two ways: the prompts of one length answered
together (training/generate.py `greedy_chat_replies`, what every stage's exact match does since
8f1d9ed) and one prompt a call (`chat_reply`), with each prompt whose answer differs and the two
best first-token logits there: a near-tie that the rounding of the batch's shape decides (README,
LoRA's 70.5% / 71.0%; bench/RESULTS.md).

    python bench/lora_exact_match.py runs/demo/07-lora/merged data/demo/sft/heldout.jsonl [max_new_tokens]
    python bench/lora_exact_match.py runs/demo/05-pretrain/final data/demo/sft/heldout.jsonl 32 runs/demo/07-lora/adapter

With an adapter folder the model is the base with the adapter loaded beside it (unmerged), as the
LoRA stage evaluates it (training/finetune.py, `load_adapter_into`), instead of a merged folder.
"""
from __future__ import annotations

import sys
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
    max_new_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 32  # the LoRA stage's setting
    model, template = load_model(folder), ChatTemplate(BPETokenizer.load(folder))
    if len(sys.argv) > 4:
        model = load_adapter_into(model, sys.argv[4])
    model.eval()
    rows = [prompt_and_reference(it.parsed) for it in read_rows(heldout, "sft") if not isinstance(it, BadRow)]
    with torch.no_grad():
        batched = greedy_chat_replies(model, template, [context for context, _ in rows], max_new_tokens)
        alone = [chat_reply(model, template, context, Sampling(max_new_tokens)) for context, _ in rows]

    def exact(answers: list[str]) -> float:
        return sum(a.strip() == (ref or "").strip() for a, (_, ref) in zip(answers, rows)) / len(rows)

    print(f"prompts of one length together: {exact(batched):.3f}; one prompt a call: {exact(alone):.3f} "
          f"({len(rows)} prompts)")
    for i, (a, b) in enumerate(zip(batched, alone)):
        if a != b:
            context, reference = rows[i]
            with torch.no_grad():
                top = model(torch.tensor([template.prompt(context)]))["logits"][0, -1].topk(2)
            firsts = ", ".join(f"{template.tok.decode([int(t)])!r} {float(v):.6f}" for v, t in zip(top.values, top.indices))
            print(f"  {context[-1]['content']!r} (reference {reference!r}): together {a!r}, alone {b!r}; "
                  f"first-token logits {firsts}")


if __name__ == "__main__":
    main()
