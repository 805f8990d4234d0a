"""Demo alignment data: small instruction tasks with checkable answers, and preference pairs.

Deterministic for a seed. The tasks are ones a 2M-parameter model can learn on a CPU in minutes:
repeat, reverse or sort a few words, add two digits, pick the larger of two numbers. Rows come in
the three supervised formats the SFT stage reads (chat messages, prompt/completion, Alpaca), and
a few malformed rows are planted in the training file so the run shows them counted with their
line numbers. A preference pair's chosen answer is correct and its rejected answer subtly wrong
(one word changed, two words swapped, the order not reversed, the sum off by one, the smaller
number).
"""
from __future__ import annotations

import json
import os
import random

WORDS = ("file", "list", "name", "value", "path", "type", "data", "time", "line", "mode", "size", "text",
         "key", "code", "item", "node")
TASKS = ("repeat", "reverse", "sort", "add", "larger")


def make_task(rng: random.Random, kind: str) -> tuple[str, str, str]:
    """(prompt, correct answer, subtly wrong answer)."""
    if kind == "add":
        a, b = rng.randrange(10), rng.randrange(10)
        return f"What is {a} + {b}?", str(a + b), str(a + b + rng.choice((-1, 1)) if a + b else 1)
    if kind == "larger":
        a, b = rng.sample(range(100), 2)
        return f"Which is larger, {a} or {b}?", str(max(a, b)), str(min(a, b))
    words = rng.sample(WORDS, rng.randint(3, 4))
    if kind == "repeat":
        wrong = list(words)
        wrong[rng.randrange(len(words))] = rng.choice([w for w in WORDS if w not in words])
        return "Repeat: " + " ".join(words), " ".join(words), " ".join(wrong)
    if kind == "reverse":
        return "Reverse the words: " + " ".join(words), " ".join(reversed(words)), " ".join(words)
    ordered = sorted(words)
    wrong = list(ordered)
    i = rng.randrange(len(wrong) - 1)
    wrong[i], wrong[i + 1] = wrong[i + 1], wrong[i]
    return "Sort the words: " + " ".join(words), " ".join(ordered), " ".join(wrong)


def sft_row(rng: random.Random, prompt: str, answer: str, kind: str) -> dict:
    """The same example in one of the formats people have, chosen at random."""
    shape = rng.randrange(3)
    if shape == 0:
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], "task": kind}
    if shape == 1:
        return {"prompt": prompt, "completion": answer, "task": kind}
    return {"instruction": prompt, "input": "", "output": answer, "task": kind}


BAD_ROWS = (
    b'{"messages": [{"role": "user", "content": "unterminated"\n',
    b'{"instruction": "What is 1 + 1?"}\n',
    b'{"messages": [{"role": "robot", "content": "hi"}]}\n',
    b'["a", "list"]\n',
    b'{"prompt": "caf\xe9", "completion": "latin-1 bytes"}\n',
)


def write_tasks(output: str, seed: int = 0, train: int = 3000, heldout: int = 200) -> dict:
    """sft/{train,heldout}.jsonl and preferences/{train,heldout}.jsonl under `output`."""
    rng = random.Random(seed)
    summary = {}
    for folder in ("sft", "preferences"):
        os.makedirs(os.path.join(output, folder), exist_ok=True)
    for split, n in (("train", train), ("heldout", heldout)):
        sft, prefs = [], []
        for i in range(n):
            kind = TASKS[i % len(TASKS)]
            prompt, good, bad = make_task(rng, kind)
            sft.append(json.dumps(sft_row(rng, prompt, good, kind)).encode() + b"\n")
            p2, good2, bad2 = make_task(rng, kind)
            prefs.append(json.dumps({"prompt": p2, "chosen": good2, "rejected": bad2, "task": kind}).encode() + b"\n")
        if split == "train":
            for k, bad_row in enumerate(BAD_ROWS):
                sft.insert(1 + k * (len(sft) // len(BAD_ROWS)), bad_row)
        with open(os.path.join(output, "sft", f"{split}.jsonl"), "wb") as f:
            f.writelines(sft)
        with open(os.path.join(output, "preferences", f"{split}.jsonl"), "wb") as f:
            f.writelines(prefs)
        summary[split] = n
    summary["bad_rows_planted"] = len(BAD_ROWS)
    return summary
