"""Where an RL run's per-step KL figure moves, and whether the estimator is why
(docs/alignment.md "Is the KL bounded?").

    python bench/rl_kl_check.py --metrics runs/demo/10-rl/metrics.jsonl [--from-step 15]
    python bench/rl_kl_check.py --metrics runs/demo/10-rl/metrics.jsonl --policy runs/demo/10-rl/final \\
        --reference runs/demo/06-sft/final --prompts data/demo/sft/train.jsonl [--batches 12] [--prompts-per-batch 32]

From the stage's metrics.jsonl: the mean and standard deviation over the steps from --from-step
of `kl` (the exact next-token KL, training/rl.py `position_kl`) and `kl_k3` (the loss's k3 on the
sampled tokens), and the largest step with its neighbours. With --policy and --reference: a fixed
policy measured on --batches random batches of training prompts (`group_size` 8 samples each at
temperature 0.7, the demo's RL setting), both estimators per batch: with the policy fixed, what
still moves between batches is the prompt mix and the sampling.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402


def step_spread(path: str, from_step: int) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    steps = [r for r in rows if r.get("event") == "train" and r.get("kl") is not None]
    later = [r for r in steps if r["step"] >= from_step]
    for key in ("kl", "kl_k3"):
        vals = [r[key] for r in later if r.get(key) is not None]
        if vals:
            print(f"{key}: steps {from_step}-{later[-1]['step']}: mean {statistics.mean(vals):.4f}, "
                  f"sd {statistics.pstdev(vals):.4f}, largest {max(vals):.4f}")
    top = max(range(len(steps)), key=lambda i: steps[i]["kl"])
    around = ", ".join(f"step {steps[i]['step']} {steps[i]['kl']:.3f}" for i in range(max(top - 1, 0), min(top + 2, len(steps))))
    print(f"largest step kl and its neighbours: {around}")


def batch_spread(policy_dir: str, reference_dir: str, prompts_path: str, batches: int, per_batch: int) -> None:
    from llmdata.chat import ChatTemplate
    from llmdata.tokenizer_io import BPETokenizer
    from training.export import load_model
    from training.generate import Sampling
    from training.rl import grpo_loss, label_logps, pad_completions, position_kl, sample_groups, tempered_logits
    from training.rl_stage import read_prompts

    tok = BPETokenizer.load(reference_dir)
    template, pad = ChatTemplate(tok), tok.special_ids["<|pad|>"]
    reference, policy = load_model(reference_dir).eval(), load_model(policy_dir).eval()
    prompts = read_prompts(prompts_path)[0]
    sampling, temperature = Sampling(16, 0.7), 0.7
    rng = random.Random(0)
    k3s, exacts = [], []
    with torch.no_grad():
        for b in range(batches):
            gen = torch.Generator().manual_seed(b)
            comps = [c for i in rng.sample(range(len(prompts)), per_batch)
                     for c in sample_groups(policy, template, [prompts[i]], 8, sampling, gen)]
            batch = pad_completions(comps, pad)
            mask = batch["labels"] != -100
            logits = tempered_logits(policy, batch["input_ids"], temperature)
            ref_logits = tempered_logits(reference, batch["input_ids"], temperature)
            logps, ref_logps = label_logps(logits, batch["labels"]), label_logps(ref_logits, batch["labels"])
            k3 = grpo_loss(logps, logps, ref_logps, torch.zeros(len(comps)), mask).kl_mean
            exact = float(position_kl(logits, ref_logits, mask).sum() / mask.sum())
            k3s.append(k3)
            exacts.append(exact)
            print(f"batch {b}: k3 {k3:.4f}, exact {exact:.4f}")
    for name, vals in (("k3", k3s), ("exact", exacts)):
        print(f"{name}: {min(vals):.3f}-{max(vals):.3f}, mean {statistics.mean(vals):.4f}, sd {statistics.pstdev(vals):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics", required=True, help="an RL stage's metrics.jsonl")
    ap.add_argument("--from-step", type=int, default=15)
    ap.add_argument("--policy", help="a trained policy folder (final/)")
    ap.add_argument("--reference", help="its reference (the SFT model's final/)")
    ap.add_argument("--prompts", help="prompts file (the RL stage's train_file)")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--prompts-per-batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    step_spread(args.metrics, args.from_step)
    if args.policy:
        if not (args.reference and args.prompts):
            ap.error("--policy needs --reference and --prompts")
        batch_spread(args.policy, args.reference, args.prompts, args.batches, args.prompts_per_batch)


if __name__ == "__main__":
    main()
