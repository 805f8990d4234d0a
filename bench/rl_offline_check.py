"""Controlled continued training of a model outside the RL stage (docs/alignment.md, "Why a larger
step does not help"): the stage's optimizer setup without the stage, to tell a bug from a limit.

    python bench/rl_offline_check.py --model runs/demo/06-sft/final --train data/demo/sft/train.jsonl \\
        --heldout data/demo/sft/heldout.jsonl --mode reference --lr 3e-4 --steps 60 --prompts 8

Each step draws `--prompts` training prompts and takes one AdamW step as the trainer's (betas 0.9 /
0.95, weight decay 0.1 on matrices, gradient norm clipped to 1, `--warmup` linear steps then cosine
to lr / 10) on the mean next-token loss of one of:

  reference  the prompts' reference answers (plain SFT continued: a diagnostic, not RL),
  own        the model's own samples (`--group` per prompt at `--temperature`, training/rl.py
             `sample_groups`) that the checker marks right: rejection-sampling fine-tuning,
  grpo       the RL stage's loss on the same samples (`group_advantages`, `grpo_loss` with
             kl_coef 0.04 against the starting model, log-probs at the sampling temperature).

`--fixed-prompts` draws the step's prompts once and reuses them every step: whether the loss can
raise the reward on prompts it trains on (it prints the mean checker reward of the samples every
10 steps, and greedy exact match on those prompts before and after).

The labels, log-probs and padding are training/rl.py's (`pad_completions`, `token_logps`), so a
mismatch between them and the SFT stage's would show here. Prints greedy exact match on the
held-out prompts after training (all tasks and per task), and the wall time. Before training it
checks what the RL stage relies on and prints the figures: the reference answers' loss through
`pad_completions` + `token_logps` equals the model's own loss on the SFT encoding, the KV-cache
logits equal a full forward pass, train and eval mode give the same log-probs (no dropout), and how
many sampled completions are not the tokenizer's own encoding of their text.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from llmdata.chat import BadRow, ChatTemplate, inputs_and_labels, prompt_and_reference, read_rows  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from training.exact_match import exact_match  # noqa: E402
from training.export import load_model  # noqa: E402
from training.generate import Sampling  # noqa: E402
from training.rl import Completion, group_advantages, grpo_loss, pad_completions, sample_groups, token_logps  # noqa: E402


def conversations(path: str, task: str | None = None) -> list[tuple[str, list]]:
    """(task, messages) of a conversation file's usable rows; with `task`, only that task's rows."""
    rows = [(it.row.get("task", "all"), it.parsed) for it in read_rows(path, "sft") if not isinstance(it, BadRow)]
    return [r for r in rows if task is None or r[0] == task]


@torch.no_grad()
def setup_checks(model, template: ChatTemplate, tok: BPETokenizer, held: list, pad: int, temperature: float) -> None:
    """The consistency figures described in the module docstring, printed."""
    model.eval()
    comps, rl_sum, sft_sum, count = [], 0.0, 0.0, 0
    for _, msgs in held[:40]:
        context, reference = prompt_and_reference(msgs)
        comps.append(Completion(0, template.prompt(context), tok.encode(reference) + [template.end_id], reference, True))
        ids, mask = template.encode(msgs)
        inp, lab = inputs_and_labels(ids, mask)
        n = sum(t != -100 for t in lab)
        sft_sum += float(model(torch.tensor([inp]), labels=torch.tensor([lab]))["loss"]) * n
        count += n
    batch = pad_completions(comps, pad)
    rl_sum = -float(token_logps(model, batch["input_ids"], batch["labels"]).sum())
    print(f"reference answers' loss: pad_completions + token_logps {rl_sum / count:.6f}, SFT encoding {sft_sum / count:.6f}")
    prompt = torch.tensor([comps[0].prompt_ids])
    seq = model.generate(prompt, 10, eos_id=template.end_id)
    full = model(seq)["logits"][0, prompt.size(1) - 1 : -1]
    cache = [dict() for _ in model.blocks]
    steps = [model(seq[:, : prompt.size(1)], cache=cache)["logits"][0, -1]]
    for j in range(prompt.size(1), seq.size(1) - 1):
        steps.append(model(seq[:, j : j + 1], cache=cache, start=j)["logits"][0, -1])
    print(f"KV cache vs full forward: largest logit difference {float((torch.stack(steps) - full).abs().max()):.2e}")
    gen = torch.Generator().manual_seed(0)
    sampled = [c for _, msgs in held[:40]
               for c in sample_groups(model, template, [prompt_and_reference(msgs)[0]], 8,
                                      Sampling(16, temperature, None, None), gen)]
    odd = sum((c.completion_ids[:-1] if c.finished else c.completion_ids) != tok.encode(c.text) for c in sampled)
    print(f"sampled completions that are not the tokenizer's encoding of their text: {odd} / {len(sampled)}")
    batch = pad_completions(sampled, pad)
    model.eval()
    ev = token_logps(model, batch["input_ids"], batch["labels"], temperature)
    model.train()
    tr = token_logps(model, batch["input_ids"], batch["labels"], temperature)
    print(f"train vs eval mode: largest log-prob difference {float((ev - tr).abs().max()):.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--mode", choices=("reference", "own", "grpo"), required=True)
    ap.add_argument("--fixed-prompts", action="store_true", help="the same prompts every step")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=8, help="prompts per step")
    ap.add_argument("--group", type=int, default=8, help="samples per prompt (--mode own)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--task", default=None, help="train and evaluate on this task's rows only (e.g. add)")
    ap.add_argument("--lora-rank", type=int, default=0,
                    help="train LoRA adapters of this rank (alpha 2 x rank, the LoRA stage's targets) instead of every weight")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    tok = BPETokenizer.load(args.model)
    template = ChatTemplate(tok)
    pad = tok.special_ids["<|pad|>"]
    model = load_model(args.model)
    reference_model = load_model(args.model).eval()
    held = conversations(args.heldout, args.task)
    train = [prompt_and_reference(msgs) for _, msgs in conversations(args.train, args.task)]
    if not args.skip_checks:
        setup_checks(model, template, tok, held, pad, args.temperature)
    if args.lora_rank:
        from training.lora import apply_lora

        apply_lora(model, ["wq", "wk", "wv", "wo", "w1", "w2", "w3"], args.lora_rank, 2.0 * args.lora_rank, 0.0)
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trained if p.dim() >= 2], "weight_decay": 0.0 if args.lora_rank else 0.1},
              {"params": [p for p in trained if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    sampling = Sampling(args.max_new_tokens, args.temperature, None, None)
    started = time.perf_counter()
    fixed = rng.sample(train, args.prompts) if args.fixed_prompts else None

    def fixed_greedy() -> str:
        rows = [("fixed", context + [{"role": "assistant", "content": reference}]) for context, reference in fixed]
        return f"{100 * exact_match(model, template, rows, len(rows), args.max_new_tokens)['exact_match']:.1f}%"

    before = fixed_greedy() if fixed else None
    for step in range(args.steps):
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            lr = args.lr / 10 + 0.45 * args.lr * (1 + math.cos(math.pi * (step - args.warmup) / max(args.steps - args.warmup, 1)))
        for g in opt.param_groups:
            g["lr"] = lr
        comps, rewards = [], []
        for context, reference in fixed or rng.sample(train, args.prompts):
            if args.mode == "reference":
                comps.append(Completion(0, template.prompt(context), tok.encode(reference) + [template.end_id], reference, True))
                continue
            group = sample_groups(model, template, [context], args.group, sampling, gen)
            right = [c.finished and c.text.strip() == reference.strip() for c in group]
            rewards.append(right)
            comps += [c for c, ok in zip(group, right) if ok or args.mode == "grpo"]
        if rewards and step % 10 == 0:
            print(f"step {step}: mean checker reward of the samples {sum(map(sum, rewards)) / args.prompts / args.group:.3f}")
        if not comps:
            continue
        batch = pad_completions(comps, pad)
        model.train()
        if args.mode == "grpo":
            with torch.no_grad():
                ref_logps = token_logps(reference_model, batch["input_ids"], batch["labels"], args.temperature)
            logps = token_logps(model, batch["input_ids"], batch["labels"], args.temperature)
            adv = group_advantages(torch.tensor(rewards, dtype=torch.float32)).advantages.flatten()
            out = grpo_loss(logps, logps.detach(), ref_logps, adv, batch["labels"] != -100, 0.2, 0.04)
            loss = out.loss_sum / out.count
        else:
            logps = token_logps(model, batch["input_ids"], batch["labels"])
            loss = -logps.sum() / (batch["labels"] != -100).sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
    if fixed:
        print(f"greedy exact match on the {len(fixed)} training prompts: {before} before, {fixed_greedy()} after")
    em = exact_match(model, template, held, len(held), args.max_new_tokens)
    tasks = ", ".join(f"{t} {100 * v:.1f}%" for t, v in em["by_task"].items())
    print(f"mode {args.mode}, lr {args.lr:g}, {args.steps} steps of {args.prompts} prompts: held-out exact match "
          f"{100 * em['exact_match']:.1f}% ({tasks}); {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
