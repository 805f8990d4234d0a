"""Exact match of greedy answers on held-out prompts: the task metric of the SFT, LoRA and DPO
stages (and of RL), overall and per task, beside a few examples for the reports.

An answer matches when the greedy reply, stripped, equals the reference answer, stripped (the
demo tasks' answers are short and exact: a number, a repeated or reversed list of words).

Held-out prompts that also occur among the stage's training prompts measure recall, not
generalization (the demo's "What is a + b?" has 100 prompts, all of them in its training file):
given the training prompts, the result counts them and gives the exact match on the others too.
Two prompts are the same when their turns have the same roles and the same contents, stripped
(`prompt_key`)."""
from __future__ import annotations

import json
from collections import Counter
from typing import Callable, Iterable, Optional

from llmdata.chat import ChatTemplate, Message, prompt_and_reference


def prompt_key(context: list[Message]) -> str:
    """A prompt's identity for the overlap check: its turns' roles and stripped contents."""
    return json.dumps([[m["role"], m["content"].strip()] for m in context], ensure_ascii=False)


def training_prompts(conversations: Iterable[list[Message]]) -> frozenset[str]:
    """`prompt_key` of each conversation's prompts: the turns before each of its assistant turns,
    since the SFT loss is on every assistant turn (a conversation without one is all prompt)."""
    keys = set()
    for messages in conversations:
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        keys.update(prompt_key(messages[:i]) for i in answers or [len(messages)])
    return frozenset(keys)


def exact_match(model, template: ChatTemplate, rows: list[tuple[str, list[Message]]], limit: int,
                max_new_tokens: int, answer: Optional[Callable[[list[Message]], str]] = None,
                train_prompts: Optional[frozenset[str]] = None) -> dict:
    """Answers to the first `limit` held-out prompts (greedy, the prompts of one length answered
    together: training/generate.py `greedy_chat_replies`; or `answer(prompt messages)`, e.g.
    best-of-N) against their reference answers: {"exact_match", "n", "by_task", "examples"}; with
    `train_prompts` (`training_prompts`) also "in_training" (how many of the n prompts are among
    them, per task in "in_training_by_task") and "unseen" ({"exact_match", "n"} over the others,
    exact_match None when there are none)."""
    import torch  # here, not at the top: the run report reads in_training_text without torch

    from training.generate import greedy_chat_replies

    with torch.no_grad():
        model.eval()
        greedy = (iter(greedy_chat_replies(model, template, [prompt_and_reference(m)[0] for _, m in rows[:limit]],
                                           max_new_tokens)) if answer is None else None)  # in the rows' order
        hits: Counter = Counter()
        seen: Counter = Counter()
        overlap: Counter = Counter()
        unseen_hits = 0
        examples = []
        for task, messages in rows[:limit]:
            context, reference = prompt_and_reference(messages)
            reply = (next(greedy) if greedy is not None else answer(context)).strip()
            ok = reply == (reference or "").strip()
            hits[task] += ok
            seen[task] += 1
            if train_prompts is not None:
                if prompt_key(context) in train_prompts:
                    overlap[task] += 1
                else:
                    unseen_hits += ok
            if len(examples) < 8:
                examples.append({"task": task, "prompt": context[-1]["content"], "reference": reference,
                                 "answer": reply, "ok": ok})
        total = sum(seen.values())
        result = {"exact_match": sum(hits.values()) / total if total else None, "n": total,
                  "by_task": {t: hits[t] / seen[t] for t in sorted(seen)}, "examples": examples}
        if train_prompts is not None:
            unseen = total - sum(overlap.values())
            result.update(in_training=total - unseen, in_training_by_task={t: overlap[t] for t in sorted(seen)},
                          unseen={"exact_match": unseen_hits / unseen if unseen else None, "n": unseen})
        return result


def exact_match_rows(em: dict, label: str) -> dict:
    """Report rows of `exact_match`'s result: overall, then per task, each labelled."""
    rows = {f"{label}: all tasks ({em['n']} prompts)": em["exact_match"]}
    if "unseen" in em:
        rows[f"{label}: the {em['unseen']['n']} prompts not among the training prompts"] = em["unseen"]["exact_match"]
    rows.update({f"{label}: {task}": v for task, v in em["by_task"].items()})
    return rows


def overlap_rows(em: Optional[dict]) -> dict:
    """Report rows saying how many held-out prompts are also training prompts, overall and per
    task (empty without the check)."""
    text = in_training_text(em)
    return {"held-out prompts also among the training prompts": text} if text else {}


def in_training_text(em: Optional[dict]) -> Optional[str]:
    """"53 of 200 (add 40, larger 4, ...)": how many of `exact_match`'s prompts are training
    prompts, per task where any; None without the check. Torch-free, for the run report too."""
    if not em or "in_training" not in em:
        return None
    per_task = ", ".join(f"{t} {k}" for t, k in em["in_training_by_task"].items() if k)
    return f"{em['in_training']} of {em['n']}" + (f" ({per_task})" if per_task else "")

