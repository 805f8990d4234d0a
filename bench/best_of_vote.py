"""Best-of-N selections side by side on held-out prompts: greedy, the highest reward, plain
majority voting and the reward-weighted vote at several vote temperatures (docs/alignment.md).

    python bench/best_of_vote.py --model runs/demo/06-sft/final --reward-model runs/demo/08-reward/final \\
        --heldout data/demo/sft/heldout.jsonl [--n 8] [--temperature 0.7] [--vote-temperatures 1 1.5 2 4]

Samples exactly as the RL stage's `best_of` does (one generator seeded `--seed`, the prompts in
order, `best_of_n`), scores once, then chooses every way from the same candidates. To pick a vote
temperature without looking at the evaluation prompts, give a development file that the reward
model did not train on (e.g. the held-out preference pairs turned into {"prompt", "completion":
chosen} rows).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdata.chat import ChatTemplate, prompt_and_reference  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from training.best_of_n import best_of_n, load_matching_reward_model, select  # noqa: E402
from training.reward import score  # noqa: E402
from bench.common import add_sampling_args  # noqa: E402
from training.export import load_model  # noqa: E402
from training.finetune import load_conversations  # noqa: E402
from training.generate import Sampling, chat_reply  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sampling_args(p)
    p.add_argument("--reward-model", required=True)
    p.add_argument("--vote-temperatures", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 4.0])
    args = p.parse_args()

    model = load_model(args.model).eval()
    tokenizer = BPETokenizer.load(args.model)
    template = ChatTemplate(tokenizer)
    reward_model = load_matching_reward_model(args.reward_model, tokenizer)
    _, rows, _, _ = load_conversations(args.heldout, template, model.cfg.max_seq_len)
    sampling, greedy = Sampling(args.max_new_tokens, args.temperature), Sampling(args.max_new_tokens)
    gen = torch.Generator().manual_seed(args.seed)
    hits: Counter = Counter()
    rows = rows[: args.limit]
    with torch.no_grad():
        for _, messages in rows:
            context, reference = prompt_and_reference(messages)
            ref = (reference or "").strip()
            _, scored, _ = best_of_n(model, reward_model, template, context, args.n, sampling, gen)
            answers = [a.strip() for a, _ in scored]
            greedy_answer = chat_reply(model, template, context, greedy)
            hits["greedy"] += greedy_answer.strip() == ref
            # the greedy answer as one of the N candidates, with N - 1 samples
            with_greedy = [(greedy_answer, score(reward_model, template, context, greedy_answer)[0]), *scored[: args.n - 1]]
            hits[f"greedy + {args.n - 1} samples, highest reward"] += select(with_greedy, "max").strip() == ref
            hits[f"greedy + {args.n - 1} samples, reward-weighted vote, temperature 2"] += select(with_greedy, "vote", 2.0).strip() == ref
            hits[f"best-of-{args.n}, highest reward"] += select(scored, "max").strip() == ref
            hits["majority vote (no reward model)"] += Counter(answers).most_common(1)[0][0] == ref
            for t in args.vote_temperatures:
                hits[f"reward-weighted vote, temperature {t:g}"] += select(scored, "vote", t).strip() == ref
            hits[f"at least one of the {args.n} right"] += ref in answers
    print(f"{len(rows)} prompts of {args.heldout}; N {args.n}, temperature {args.temperature}, seed {args.seed}")
    print("| selection | exact match |\n|---|---:|")
    for name, k in hits.items():
        print(f"| {name} | {100 * k / len(rows):.1f}% |")


if __name__ == "__main__":
    main()
