"""Demo alignment data: small instruction tasks with checkable answers, and preference pairs.

Deterministic for a seed. The tasks are ones a 2M-parameter model can learn on a CPU in minutes:
repeat, reverse or sort a few words, add two digits, pick the larger of two numbers. Rows come in
the three supervised formats the SFT stage reads (chat messages, prompt/completion, Alpaca), and
a few malformed rows are planted in the training file so the run shows them counted with their
line numbers.

A preference pair's chosen answer is correct and its rejected answer wrong in one of the ways the
demo SFT model's own samples are wrong (its 1,600 samples at temperature 0.7 on the 200 held-out
prompts, classified in docs/alignment.md), one error per pair. Each rejected answer's kind is
drawn with these weights (`ERRORS`):

- repeat, reverse, sort: one word replaced by a word not in the prompt 35%; one word replaced by
  a copy of another of its words 25%; two words replaced by words not in the prompt 20%; two
  adjacent words swapped 10%; the task left undone 10% (repeat: a word dropped; reverse and sort:
  the words in the prompt's order; for an already sorted prompt, two adjacent words swapped).
- add: the sum off by one 50%, off by two 20%, off by 3 to 9 10%, one of the operands 20%.
- larger: a number within 9 of the larger 50%, any other number below 100 30%, the smaller 20%.

Each training prompt has `REJECTED_PER_PROMPT` (5) pairs whose rejected answers differ from each
other, redrawn up to 10 times. A task's first kind above gives one answer per prompt (the shared
generator's `near_miss`), so after the redraws it is rarer in the demo's training file than its
weight: there (seed 0, 15,000 pairs) repeat has 18% one word replaced, 31% duplicated, 26% two
replaced, 12% swapped, 13% dropped; reverse 9% in the prompt's order; sort 9% swapped, 7% in the
prompt's order; add 22% off by one, 30% off by two, 24% off by 3 to 9, 24% an operand; larger 13%
the smaller, 53% near the larger, 34% other. The held-out file (one pair per prompt) follows the
weights.

A rejected answer always differs from the chosen one (the checker marks it wrong). The error kinds
are drawn from a generator of their own (`random.Random(f"{seed}:preferences:{split}")`), so the
supervised rows and the corpus are the same bytes as before the error kinds existed: the shared
generator makes exactly the calls it made when each task had one error kind (still one of them,
`near_miss`).
"""
from __future__ import annotations

import json
import os
import random
from typing import NamedTuple

WORDS = ("file", "list", "name", "value", "path", "type", "data", "time", "line", "mode", "size", "text",
         "key", "code", "item", "node")
TASKS = ("repeat", "reverse", "sort", "add", "larger")


class Task(NamedTuple):
    prompt: str
    answer: str
    near_miss: str  # the task's first error kind (ERRORS[kind][0]), drawn with the shared generator
    operands: tuple  # the two numbers, or the prompt's words in order


def make_task(rng: random.Random, kind: str) -> Task:
    """One task of `kind` (TASKS) with its correct answer and one subtly wrong one (`near_miss`)."""
    if kind == "add":
        a, b = rng.randrange(10), rng.randrange(10)
        return Task(f"What is {a} + {b}?", str(a + b), str(a + b + rng.choice((-1, 1)) if a + b else 1), (a, b))
    if kind == "larger":
        a, b = rng.sample(range(100), 2)
        return Task(f"Which is larger, {a} or {b}?", str(max(a, b)), str(min(a, b)), (a, b))
    words = rng.sample(WORDS, rng.randint(3, 4))
    if kind == "repeat":
        wrong = list(words)
        wrong[rng.randrange(len(words))] = rng.choice([w for w in WORDS if w not in words])
        return Task("Repeat: " + " ".join(words), " ".join(words), " ".join(wrong), tuple(words))
    if kind == "reverse":
        return Task("Reverse the words: " + " ".join(words), " ".join(reversed(words)), " ".join(words), tuple(words))
    ordered = sorted(words)
    wrong = list(ordered)
    i = rng.randrange(len(wrong) - 1)
    wrong[i], wrong[i + 1] = wrong[i + 1], wrong[i]
    return Task("Sort the words: " + " ".join(words), " ".join(ordered), " ".join(wrong), tuple(words))


_WORD_ERRORS = (("word_replaced", 35), ("word_duplicated", 25), ("two_words_replaced", 20), ("adjacent_swap", 10))
#: per task, (error kind, weight in percent) of the rejected answers; the first kind is the task's `near_miss`
ERRORS: dict[str, tuple[tuple[str, int], ...]] = {
    "repeat": _WORD_ERRORS + (("word_dropped", 10),),
    "reverse": (("not_reversed", 10),) + _WORD_ERRORS,
    "sort": (("adjacent_swap", 10),) + tuple(e for e in _WORD_ERRORS if e[0] != "adjacent_swap") + (("not_sorted", 10),),
    "add": (("off_by_one", 50), ("off_by_two", 20), ("off_by_3_to_9", 10), ("an_operand", 20)),
    "larger": (("the_smaller", 20), ("near_the_larger", 50), ("other_number", 30)),
}


def rejected_answer(prefs: random.Random, kind: str, task: Task) -> tuple[str, str]:
    """(error kind, wrong answer) for `task`, the kind drawn from ERRORS[kind] with `prefs` (not the
    shared generator: module docstring). The answer always differs from `task.answer`."""
    names, weights = zip(*ERRORS[kind])
    error = prefs.choices(names, weights)[0]
    if error == names[0]:
        return error, task.near_miss
    if kind == "add":
        total = sum(task.operands)
        if error == "an_operand" and any(x != total for x in task.operands):
            return error, str(prefs.choice([x for x in task.operands if x != total]))
        if error == "an_operand":  # 0 + 0: no operand differs from the sum
            return names[0], task.near_miss
        step = 2 if error == "off_by_two" else prefs.randint(3, 9)
        return error, str(total + step if total < step or prefs.random() < 0.5 else total - step)
    if kind == "larger":
        larger = max(task.operands)
        if error == "near_the_larger":
            near = [x for x in range(larger - 9, larger + 10) if 0 <= x < 100 and x != larger]
            return error, str(prefs.choice(near))
        return error, str(prefs.choice([x for x in range(100) if x != larger]))
    words = task.answer.split()
    others = [w for w in WORDS if w not in words]
    wrong = list(words)
    if error == "word_replaced":
        wrong[prefs.randrange(len(wrong))] = prefs.choice(others)
    elif error == "two_words_replaced":
        for i, w in zip(prefs.sample(range(len(wrong)), 2), prefs.sample(others, 2)):
            wrong[i] = w
    elif error == "word_duplicated":
        i, j = prefs.sample(range(len(wrong)), 2)
        wrong[i] = wrong[j]
    elif error == "word_dropped":
        del wrong[prefs.randrange(len(wrong))]
    elif error == "not_sorted" and list(task.operands) != words:
        wrong = list(task.operands)
    else:  # adjacent_swap, or the prompt's words already in sorted order
        error, i = "adjacent_swap", prefs.randrange(len(wrong) - 1)
        wrong[i], wrong[i + 1] = wrong[i + 1], wrong[i]
    return error, " ".join(wrong)


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


#: rejected answers per training preference prompt (one pair each): 5 x 3,000 pairs let a 1,000-step
#: reward model see each pair about once (docs/alignment.md, "Reward model")
REJECTED_PER_PROMPT = 5


def write_tasks(output: str, seed: int = 0, train: int = 3000, heldout: int = 200,
                rejected_per_prompt: int = REJECTED_PER_PROMPT) -> dict:
    """sft/{train,heldout}.jsonl and preferences/{train,heldout}.jsonl under `output`: `train` and
    `heldout` conversations and as many preference prompts, each with one pair in the held-out file
    and `rejected_per_prompt` pairs in the training file (the same prompt and chosen answer, a
    rejected answer each, distinct where the error kinds allow: 10 draws at most). Raises
    ValueError for rejected_per_prompt < 1."""
    if rejected_per_prompt < 1:
        raise ValueError(f"rejected_per_prompt must be at least 1 (got {rejected_per_prompt})")
    rng = random.Random(seed)
    summary = {}
    for folder in ("sft", "preferences"):
        os.makedirs(os.path.join(output, folder), exist_ok=True)
    for split, n in (("train", train), ("heldout", heldout)):
        prefs_rng = random.Random(f"{seed}:preferences:{split}")
        sft, prefs = [], []
        for i in range(n):
            kind = TASKS[i % len(TASKS)]
            task = make_task(rng, kind)
            sft.append(json.dumps(sft_row(rng, task.prompt, task.answer, kind)).encode() + b"\n")
            pair = make_task(rng, kind)
            seen: set[str] = set()
            for _ in range(rejected_per_prompt if split == "train" else 1):
                for _draw in range(10):
                    error, rejected = rejected_answer(prefs_rng, kind, pair)
                    if rejected not in seen:
                        break
                seen.add(rejected)
                prefs.append(json.dumps({"prompt": pair.prompt, "chosen": pair.answer, "rejected": rejected, "task": kind,
                                         "error": error}).encode() + b"\n")
        if split == "train":
            for k, bad_row in enumerate(BAD_ROWS):
                sft.insert(1 + k * (len(sft) // len(BAD_ROWS)), bad_row)
        with open(os.path.join(output, "sft", f"{split}.jsonl"), "wb") as f:
            f.writelines(sft)
        with open(os.path.join(output, "preferences", f"{split}.jsonl"), "wb") as f:
            f.writelines(prefs)
        summary[split] = n
        summary[f"{split}_pairs"] = len(prefs)
    summary["bad_rows_planted"] = len(BAD_ROWS)
    return summary
