"""What RL's groups can teach, per task: for a model and a conversation file's prompts, G completions
sampled per prompt as the RL stage samples them (training/rl.py `sample_groups`), and per task the
mean checker reward, the share of groups whose rewards are all equal (no advantage: all right or all
wrong), and the share of answers that are a word of the prompt (for "Which is larger, a or
b?" a right answer always does) (docs/alignment.md, "Still short of +10").

    python bench/rl_group_stats.py runs/demo/06-sft/final data/demo/sft/train.jsonl [prompts] [group] [temperature]

Defaults: 200 prompts drawn with seed 0, groups of 8, temperature 0.7 (the demo's rl: settings), 16
new tokens, 2 threads.
"""
from __future__ import annotations

import collections
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdata.chat import BadRow, ChatTemplate, prompt_and_reference, read_rows  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from training.export import load_model  # noqa: E402
from training.generate import Sampling  # noqa: E402
from training.rl import sample_groups  # noqa: E402


def main() -> None:
    folder, path = sys.argv[1], sys.argv[2]
    n, group, temperature = (int(sys.argv[3]) if len(sys.argv) > 3 else 200, int(sys.argv[4]) if len(sys.argv) > 4 else 8,
                             float(sys.argv[5]) if len(sys.argv) > 5 else 0.7)
    torch.set_num_threads(2)
    model, template = load_model(folder).eval(), ChatTemplate(BPETokenizer.load(folder))
    rows = [(it.row.get("task", "all"), *prompt_and_reference(it.parsed)) for it in read_rows(path, "sft")
            if not isinstance(it, BadRow)]
    stats: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for i, (task, context, reference) in enumerate(random.Random(0).sample(rows, min(n, len(rows)))):
        group_of = sample_groups(model, template, [context], group, Sampling(16, temperature),
                                 torch.Generator().manual_seed(i))
        right = [c.text.strip() == (reference or "").strip() for c in group_of]
        words = set(re.findall(r"\w+", context[-1]["content"]))
        s = stats[task]
        s["groups"] += 1
        s["samples"] += len(right)
        s["right"] += sum(right)
        s["all_right"] += all(right)
        s["all_wrong"] += not any(right)
        s["in_prompt"] += sum(c.text.strip() in words for c in group_of)
    print(f"{folder}: {n} prompts of {path}, groups of {group}, temperature {temperature:g}")
    for task in sorted(stats):
        s = stats[task]
        print(f"  {task:8s} {s['groups']:4d} groups: mean reward {s['right'] / s['samples']:.2f}, all right "
              f"{s['all_right'] / s['groups']:.2f}, all wrong {s['all_wrong'] / s['groups']:.2f} (equal rewards "
              f"{(s['all_right'] + s['all_wrong']) / s['groups']:.2f}); answers found in the prompt "
              f"{s['in_prompt']} of {s['samples']}")


if __name__ == "__main__":
    main()
