"""Exact match of greedy answers on held-out prompts: the task metric of the SFT, LoRA and DPO
stages (and of RL), overall and per task, beside a few examples for the reports.

An answer matches when the greedy reply, stripped, equals the reference answer, stripped (the
demo tasks' answers are short and exact: a number, a repeated or reversed list of words)."""
from __future__ import annotations

from collections import Counter
from typing import Callable, Optional

import torch

from llmdata.chat import ChatTemplate, Message, prompt_and_reference


@torch.no_grad()
def exact_match(model, template: ChatTemplate, rows: list[tuple[str, list[Message]]], limit: int,
                max_new_tokens: int, answer: Optional[Callable[[list[Message]], str]] = None) -> dict:
    """Answers to the first `limit` held-out prompts (greedy, or `answer(prompt messages)`, e.g.
    best-of-N) against their reference answers: {"exact_match", "n", "by_task", "examples"}."""
    from training.generate import Sampling, chat_reply

    model.eval()
    greedy = Sampling(max_new_tokens)
    answer = answer or (lambda context: chat_reply(model, template, context, greedy))
    hits: Counter = Counter()
    seen: Counter = Counter()
    examples = []
    for task, messages in rows[:limit]:
        context, reference = prompt_and_reference(messages)
        reply = answer(context).strip()
        ok = reply == (reference or "").strip()
        hits[task] += ok
        seen[task] += 1
        if len(examples) < 8:
            examples.append({"task": task, "prompt": context[-1]["content"], "reference": reference, "answer": reply, "ok": ok})
    total = sum(seen.values())
    return {"exact_match": sum(hits.values()) / total if total else None, "n": total,
            "by_task": {t: hits[t] / seen[t] for t in sorted(seen)}, "examples": examples}


def exact_match_rows(em: dict, label: str) -> dict:
    """Report rows of `exact_match`'s result: overall, then per task, each labelled."""
    rows = {f"{label}: all tasks ({em['n']} prompts)": em["exact_match"]}
    rows.update({f"{label}: {task}": v for task, v in em["by_task"].items()})
    return rows

