"""What the SFT model's wrong samples are, per demo task: the table behind `llmpipe sample-data`'s
rejected-answer kinds (docs/alignment.md, "The demo's preference pairs and the reward model's budget").

    python bench/sft_errors.py --model runs/demo/06-sft/final --heldout data/demo/sft/heldout.jsonl \\
        [--n 8] [--temperature 0.7] [--seed 0]

Draws `--n` answers per held-out prompt as best-of-N does (`chat_replies`, one generator seeded
`--seed`, the prompts in order), then sorts each wrong answer into the first kind that fits, in
this order:

- repeat, reverse, sort (the reference is a list of the prompt's words): "not reversed" / "not
  sorted" (the prompt's order, when that is not the answer); "adjacent swap" (the reference with
  two neighbouring words exchanged); "one word replaced by a word not in the prompt"; "one word
  replaced by another of the prompt's words" (so that word appears twice); "2+ positions wrong
  with a word not in the prompt"; "2+ positions wrong with only the prompt's words"; "other" (a
  different length, or none of these).
- add: "not a number"; "one operand"; "+1", "-1", "+2", "-2" (the answer minus the sum); "+-3..9";
  "other".
- larger: "not a number"; "the smaller"; "a number that is neither operand" (split into within 5
  of the larger, same tens digit as the larger, other).

Prints one markdown row per task and the totals; the figures are for the model given.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdata.chat import ChatTemplate, prompt_and_reference  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from bench.common import add_sampling_args  # noqa: E402
from training.export import load_model  # noqa: E402
from training.finetune import load_conversations  # noqa: E402
from training.generate import Sampling, chat_replies  # noqa: E402

_ADD = re.compile(r"What is (\d+) \+ (\d+)\?")
_LARGER = re.compile(r"Which is larger, (\d+) or (\d+)\?")
_WORDS = (("repeat", "Repeat: "), ("reverse", "Reverse the words: "), ("sort", "Sort the words: "))


def parse_task(prompt: str) -> tuple[str, tuple]:
    """(task, operands) of a demo prompt (llmdata/sample_tasks.py `make_task`); ("other", ()) otherwise."""
    if m := _ADD.fullmatch(prompt.strip()):
        return "add", (int(m[1]), int(m[2]))
    if m := _LARGER.fullmatch(prompt.strip()):
        return "larger", (int(m[1]), int(m[2]))
    for task, lead in _WORDS:
        if prompt.startswith(lead):
            return task, tuple(prompt[len(lead):].split())
    return "other", ()


def _number(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def error_kind(task: str, operands: tuple, reference: str, answer: str) -> str:
    """The kind of a wrong `answer` (the module docstring's order); raises ValueError for a right one."""
    if answer.strip() == reference.strip():
        raise ValueError("the answer is right")
    if task == "add":
        value = _number(answer.strip())
        if value is None:
            return "not a number"
        if value in operands:
            return "one operand"
        diff = value - sum(operands)
        if diff in (1, -1, 2, -2):
            return f"{diff:+d}"
        return "+-3..9" if abs(diff) <= 9 else "other"
    if task == "larger":
        value = _number(answer.strip())
        if value is None:
            return "not a number"
        if value == min(operands):
            return "the smaller"
        big = max(operands)
        if abs(value - big) <= 5:
            return "neither operand: within 5 of the larger"
        if value // 10 == big // 10:
            return "neither operand: same tens digit"
        return "neither operand: other"
    words, ref, got = list(operands), reference.split(), answer.split()
    if got == words and task in ("reverse", "sort"):
        return "not reversed" if task == "reverse" else "not sorted"
    if len(got) != len(ref):
        return "other"
    diffs = [i for i, (a, b) in enumerate(zip(got, ref)) if a != b]
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1 and got[diffs[0]] == ref[diffs[1]] and got[diffs[1]] == ref[diffs[0]]:
        return "adjacent swap"
    new_word = any(w not in words for w in got)
    if len(diffs) == 1:
        if new_word:
            return "one word replaced by a word not in the prompt"
        return "one word replaced by another of the prompt's words"
    return "2+ positions wrong with a word not in the prompt" if new_word else "2+ positions wrong with only the prompt's words"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampling_args(p)
    args = p.parse_args()

    model = load_model(args.model).eval()
    template = ChatTemplate(BPETokenizer.load(args.model))
    _, rows, _, _ = load_conversations(args.heldout, template, model.cfg.max_seq_len)
    sampling = Sampling(args.max_new_tokens, args.temperature)
    gen = torch.Generator().manual_seed(args.seed)
    kinds: dict[str, Counter] = {}
    right = total = 0
    with torch.no_grad():
        for _, messages in rows[: args.limit]:
            context, reference = prompt_and_reference(messages)
            task, operands = parse_task(str(context[-1]["content"]))
            for answer in chat_replies(model, template, context, sampling, args.n, gen):
                total += 1
                if answer.strip() == (reference or "").strip():
                    right += 1
                    continue
                kinds.setdefault(task, Counter())[error_kind(task, operands, reference or "", answer)] += 1
    print(f"{total} samples ({args.n} per prompt, temperature {args.temperature:g}, seed {args.seed}): {right} right "
          f"({right / max(total, 1):.1%})\n")
    print("| task | wrong samples | what they are (counts) |\n|---|---:|---|")
    order = ("repeat", "reverse", "sort", "add", "larger", "other")
    for task, counts in sorted(kinds.items(), key=lambda kv: order.index(kv[0])):
        print(f"| {task} | {sum(counts.values())} | " + ", ".join(f"{k} {v}" for k, v in counts.most_common()) + " |")


if __name__ == "__main__":
    main()
