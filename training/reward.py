"""The reward stage: a scalar head on a trained transformer, trained on preference pairs.

    base model folder + {"prompt", "chosen", "rejected"} JSONL ─► the chat template ─►
      reward = w · h[last real token] ─► Bradley-Terry loss (+ lm_coef x next-token loss on chosen) ─► 08-reward/final/

The reward is read at each sequence's last real token (its <|endoftext|>), found from the
sequence's length, never by searching for a pad id: right padding cannot move it (tested), which
is the bug reward models most often have. Loss per pair:
-log sigmoid(r_chosen - r_rejected - margin) + center_coef * (r_chosen + r_rejected)^2.
Metrics on the held-out pairs: pairwise accuracy, mean chosen and rejected reward, mean margin.

`lm_coef` keeps the language-model objective on the chosen responses while the head trains, as
in GRM (Yang et al. 2024, "Regularizing hidden states enables learning generalizable reward
models"): fine-tuned on the pairwise loss alone, the backbone drifts from what it knew about the
answers towards whatever separates the training pairs, and generalizes worse to held-out pairs.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from llmdata.chat import BadRow, ChatTemplate, Message, Preference, inputs_and_labels, read_rows
from training.forgetting import forgetting_rows
from training.model import Transformer, token_loss
from training.options import RewardSection
from training.recipe import Outcome, TunedRecipe
from training.report import percent
from training.stage import TrainingInputError


class RewardModel(nn.Module):
    def __init__(self, backbone: Transformer, lm_head: bool = False):
        """`lm_head`: the language-model head is trained too (for `lm_coef`), not frozen."""
        super().__init__()
        self.backbone = backbone
        self.cfg = backbone.cfg
        # No bias: Bradley-Terry only sees reward differences, and HF's sequence-classification
        # head (which the export maps this to) has none.
        self.value = nn.Linear(backbone.cfg.d_model, 1, bias=False)
        nn.init.normal_(self.value.weight, std=1.0 / backbone.cfg.d_model ** 0.5)
        if not backbone.cfg.tie_embeddings and not lm_head:  # the LM head is not used; keep it out of the optimizer
            backbone.head.weight.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor, labels: Optional[torch.Tensor] = None):
        """One reward per right-padded sequence, read at index length - 1. With `labels` (next-token
        targets for the first labels.size(0) rows, -100 elsewhere) also the summed next-token loss
        over them and how many targets there were: (rewards, loss_sum, count)."""
        b, t = input_ids.shape
        index = torch.arange(t, device=input_ids.device).expand(b, t)
        hidden = self.backbone.hidden(input_ids, index, index)
        last = hidden[torch.arange(b, device=input_ids.device), lengths - 1]
        rewards = self.value(last).squeeze(-1).float()
        if labels is None:
            return rewards
        loss_sum, count = token_loss(self.backbone.head(hidden[: labels.size(0)]), labels)
        return rewards, loss_sum, count


Encoded = tuple[list[int], list[bool]]  # token ids and, for each, whether it is a training target


def fit_to_length(prompt: Encoded, responses: list[Encoded], max_len: int) -> tuple[list[Encoded], bool]:
    """prompt + each response, at most `max_len` tokens each, and whether they were cut. Every
    side keeps the same prompt tokens, so they differ only in the responses (as TRL's DPO
    truncation: one prompt, the completions cut): when the prompt and the longest response do not
    fit, the prompt is cut from the left only as much as that response needs, but keeps at least
    min(len(prompt), max_len // 2) tokens; a response still too long is then cut from the right,
    keeping its final token (<|endoftext|>, the token a reward is read at, never a DPO target).
    Raises ValueError when max_len < 2 (no room for a prompt token and the final token)."""
    if max_len < 2:
        raise ValueError(f"max_len must be at least 2 tokens (got {max_len})")
    longest = max(len(ids) for ids, _ in responses)
    if len(prompt[0]) + longest <= max_len:
        return [(prompt[0] + ids, prompt[1] + mask) for ids, mask in responses], False
    keep = max(max_len - longest, min(len(prompt[0]), max_len // 2))
    room = max_len - keep
    kept = tuple(x[len(x) - keep:] for x in prompt)

    def side(ids: list[int], mask: list[bool]) -> Encoded:
        if len(ids) > room:
            ids, mask = ids[: room - 1] + ids[-1:], mask[: room - 1] + mask[-1:]
        return kept[0] + ids, kept[1] + mask

    return [side(*r) for r in responses], True


def encode_pair(template: ChatTemplate, pref: Preference, max_len: int) -> tuple[Encoded, Encoded, bool]:
    """(ids, training mask) of prompt+chosen and of prompt+rejected, at most `max_len` tokens
    each, and whether they were cut (`fit_to_length`'s rule)."""
    (chosen, rejected), cut = fit_to_length(template.encode(pref.prompt, eot=False),
                                            [template.encode(pref.chosen), template.encode(pref.rejected)], max_len)
    return chosen, rejected, cut


def encode_responses(template: ChatTemplate, messages: list[Message], answers: list[list[Message]],
                     max_len: int) -> tuple[list[list[int]], bool]:
    """The ids a reward model scores for each of `answers` (assistant turns) to the turns
    `messages`: the turns, then the answer's, <|end|><|endoftext|>; at most `max_len` tokens each,
    cut by the rule its training pairs were cut by (`fit_to_length`: one prompt cut for all the
    answers, from the left down to half of max_len, then each answer from the right), and whether
    they were cut."""
    sides, cut = fit_to_length(template.encode(messages, eot=False), [template.encode(a) for a in answers], max_len)
    return [ids for ids, _ in sides], cut


def encode_response(template: ChatTemplate, messages: list[Message], response: str, max_len: int) -> tuple[list[int], bool]:
    """`encode_responses` of one text answer: (ids, whether they were cut)."""
    (ids,), cut = encode_responses(template, messages, [[{"role": "assistant", "content": response}]], max_len)
    return ids, cut


class PairSet(Dataset):
    """Pairs of ids, or of (ids, training mask) when the chosen side's response tokens are also
    targets of the language-model loss (`lm_coef`)."""

    def __init__(self, pairs: list[tuple]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        chosen, rejected = self.pairs[i]
        if isinstance(chosen[0], int):
            return {"chosen": chosen, "rejected": rejected}
        _, labels = inputs_and_labels(*chosen)
        return {"chosen": chosen[0], "rejected": rejected[0], "chosen_labels": labels + [-100]}


def pad_pairs(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen sequences then rejected ones, right-padded to the longest, with their lengths (and
    the chosen sides' next-token labels when the items have them)."""
    seqs = [it["chosen"] for it in items] + [it["rejected"] for it in items]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    batch = {"input_ids": ids, "lengths": torch.tensor([len(s) for s in seqs])}
    if "chosen_labels" in items[0]:
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        for i, it in enumerate(items):
            labels[i, : len(it["chosen_labels"])] = torch.tensor(it["chosen_labels"])
        batch["labels"] = labels
    return batch


def pair_loss(rewards: torch.Tensor, margin: float, center_coef: float) -> torch.Tensor:
    """Per-pair Bradley-Terry loss from [chosen..., rejected...] rewards."""
    half = rewards.size(0) // 2
    chosen, rejected = rewards[:half], rewards[half:]
    loss = -F.logsigmoid(chosen - rejected - margin)
    if center_coef:
        loss = loss + center_coef * (chosen + rejected) ** 2
    return loss


def read_pairs(path: str, template: ChatTemplate, max_len: int, masks: bool = False):
    """Encoded pairs (ids, or (ids, mask) with `masks`), their tasks, the bad rows, and how many
    pairs were cut to max_len."""
    pairs, tasks, bad, cut = [], [], [], 0
    for item in read_rows(path, "preference"):
        if isinstance(item, BadRow):
            bad.append(item)
            continue
        chosen, rejected, was_cut = encode_pair(template, item.parsed, max_len)
        cut += was_cut
        pairs.append((chosen, rejected) if masks else (chosen[0], rejected[0]))
        tasks.append(item.row.get("task", "all"))
    return pairs, tasks, bad, cut


@torch.no_grad()
def pair_metrics(model: RewardModel, pairs: list[tuple[list[int], list[int]]], tasks: list[str], pad_id: int,
                 batch: int = 32, decode: Optional[Callable[[list[int]], str]] = None, examples_per_task: int = 1) -> dict:
    """Pairwise accuracy, mean rewards and margin, overall and per task; with `decode`, the first
    pair of each task as text with its two rewards (for the reports)."""
    model.eval()
    chosen, rejected = [], []
    for start in range(0, len(pairs), batch):
        items = [{"chosen": c, "rejected": r} for c, r in pairs[start : start + batch]]
        rewards = model(**pad_pairs(items, pad_id))
        chosen += rewards[: len(items)].tolist()
        rejected += rewards[len(items):].tolist()
    right = [c > r for c, r in zip(chosen, rejected)]
    by_task: dict[str, list[bool]] = {}
    for t, ok in zip(tasks, right):
        by_task.setdefault(t, []).append(ok)
    n = len(pairs)
    return {"pairs": n, "accuracy": sum(right) / n if n else None,
            "mean_chosen": sum(chosen) / n if n else None, "mean_rejected": sum(rejected) / n if n else None,
            "mean_margin": sum(c - r for c, r in zip(chosen, rejected)) / n if n else None,
            "by_task": {t: sum(v) / len(v) for t, v in sorted(by_task.items())},
            "examples": _examples(pairs, tasks, chosen, rejected, decode, examples_per_task) if decode else []}


def _examples(pairs, tasks, chosen, rejected, decode, per_task: int) -> list[dict]:
    shown: Counter = Counter()
    out = []
    for (c_ids, r_ids), task, c, r in zip(pairs, tasks, chosen, rejected):
        if shown[task] < per_task:
            shown[task] += 1
            out.append({"task": task, "chosen": decode(c_ids), "rejected": decode(r_ids), "chosen_reward": c, "rejected_reward": r})
    return out


def save_reward_model(folder: str, state: dict[str, torch.Tensor], cfg) -> None:
    from training.export import save_model

    flat = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in state.items()}
    save_model(folder, flat, cfg, {"reward_head": True})


def load_reward_model(folder: str) -> RewardModel:
    """The reward model saved in `folder` (save_reward_model), in eval mode. A folder whose
    weights hold no reward head (a language model) or do not fit its model_config.json is a
    TrainingInputError."""
    from training.export import read_config, read_weights

    cfg = read_config(folder)
    model = RewardModel(Transformer(cfg))
    state = read_weights(folder)
    value = {k[len("value."):]: state.pop(k) for k in list(state) if k.startswith("value.")}
    if not value:
        raise TrainingInputError(f"{folder} is a language model, not a reward model (no reward head)")
    if cfg.tie_embeddings:
        state["head.weight"] = state["embed.weight"]
    try:
        model.backbone.load_state_dict(state, strict=True)
        model.value.load_state_dict(value, strict=True)
    except RuntimeError as err:  # weights of another shape or naming than model_config.json says
        detail = " ".join(str(err).split())[:300]
        raise TrainingInputError(f"{folder}: the weights do not fit its model_config.json ({detail})") from None
    return model.eval()


@torch.no_grad()
def score_responses(model: RewardModel, template: ChatTemplate, messages: list[Message], answers: list[list[Message]],
                    max_len: int = 4096) -> tuple[list[float], bool]:
    """(the reward of each of `answers` to the turns `messages`, in one batch, and whether their
    inputs were cut to min(max_len, the model's max_seq_len) tokens: `encode_responses`, so a
    chosen/rejected pair is cut as one, as in training)."""
    seqs, cut = encode_responses(template, messages, answers, min(max_len, model.cfg.max_seq_len))
    device = next(model.parameters()).device
    pad = template.tok.special_ids.get("<|pad|>", template.eot_id)
    ids = torch.full((len(seqs), max(len(x) for x in seqs)), pad, dtype=torch.long)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = torch.tensor(x)
    lengths = torch.tensor([len(x) for x in seqs])
    return model(ids.to(device), lengths.to(device)).float().tolist(), cut


def score(model: RewardModel, template: ChatTemplate, prompt: list[Message] | str, response: str,
          max_len: int = 4096) -> tuple[float, bool]:
    """(the reward of one response to a prompt (a string is one user turn), whether its input was
    cut to min(max_len, the model's max_seq_len) tokens: `encode_response`)."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    (reward,), cut = score_responses(model, template, messages, [[{"role": "assistant", "content": response}]], max_len)
    return reward, cut


def score_file(model_dir: str, path: Optional[str], output: Optional[str]) -> tuple[int, int, int]:
    """Score each JSONL row of `path` ({"prompt", "response"}, or preference rows {"prompt",
    "chosen", "rejected"}; each text or messages, llmdata.chat `scoring_row`) with the reward model
    in `model_dir`, one JSON line per row to `output` (None: stdout; a file is written whole or
    not at all, `jsonl_output`): {"line", "<key>_reward"..., "<key>_cut": true for each answer when
    the row did not fit the model and was shortened, its answers as one pair (`score_responses`)},
    or {"line", "error"} for a row that cannot be scored (a NaN or infinite reward too). Returns (rows, bad rows, answers scored
    cut). A missing model or input, an output that is the input, or an input with no rows or
    only rows that cannot be scored (`require_usable_rows`: a file output is then not written)
    is a TrainingInputError."""
    import json

    from llmdata.chat import read_objects, scoring_row
    from llmdata.tokenizer_io import BPETokenizer
    from training.stage import jsonl_output, require, require_usable_rows

    require(os.path.join(model_dir, "model.safetensors"), "reward model (model.safetensors)")
    if not path:
        raise TrainingInputError("reward score needs --input FILE.jsonl with prompt and response (or chosen/rejected)")
    require(path, "input")
    model = load_reward_model(model_dir)
    template = ChatTemplate(BPETokenizer.load(model_dir))
    bad = rows = shortened = 0
    first_error = None
    with jsonl_output(output, [path]) as out:
        for item in read_objects(path):
            rows += 1
            n = item.line if isinstance(item, BadRow) else item[0]
            try:
                if isinstance(item, BadRow):
                    raise ValueError(item.reason)
                messages, answers = scoring_row(item[1])
                rewards, cut = score_responses(model, template, messages, list(answers.values()))
                if not all(math.isfinite(r) for r in rewards):  # NaN is no JSON number, and no score
                    raise ValueError(f"the reward model gave a non-finite reward ({', '.join(map(str, rewards))}): "
                                     "its weights are broken (a diverged reward run?)")
                result = {"line": n, **{f"{k}_reward": r for k, r in zip(answers, rewards)}}
                if cut:  # scored on a shortened input, as its training pairs were when too long
                    result.update({f"{k}_cut": True for k in answers})
                    shortened += len(answers)
            except (ValueError, KeyError, TypeError) as err:
                bad += 1
                result = {"line": n, "error": f"{type(err).__name__}: {err}"}
                first_error = first_error or f"line {n}: {result['error']}"
            out.write(json.dumps(result, allow_nan=False) + "\n")
            out.flush()
        require_usable_rows("reward score", path, rows, bad, first_error)
    return rows, bad, shortened


class RewardRecipe(TunedRecipe):
    """A scalar head on the base model trained on preference pairs (Bradley-Terry, plus `lm_coef`
    times the next-token loss of the chosen responses); held-out pairwise accuracy before and after."""

    stage, title = "reward", "Reward model"
    section: RewardSection

    def prepare(self) -> None:
        section = self.section
        self.load_tokenizer()
        self.pairs, _, self.bad, self.cut = read_pairs(section.train_file, self.template, section.max_len,
                                                       masks=section.lm_coef > 0)
        if not self.pairs:
            raise TrainingInputError(f"reward: no usable preference pair in {section.train_file} ({len(self.bad)} bad rows)")
        self.held, self.held_tasks, self.held_bad, _ = (read_pairs(section.heldout_file, self.template, section.max_len)
                                                        if section.heldout_file else ([], [], [], 0))
        self.model = RewardModel(self.load_base("max_len"), lm_head=section.lm_coef > 0)
        self.cfg = self.model.cfg
        self.pretrain_text(None)
        self.train_set = PairSet(self.pairs)
        self.val_set = PairSet(self.held) if self.held else None

    def model_to_train(self, rank: int) -> torch.nn.Module:
        model = self.model
        self.before = pair_metrics(model, self.held, self.held_tasks, self.pad) if rank == 0 and self.held else None
        self.measure_forgetting_before(model.backbone, rank)
        model.train()
        model.backbone.checkpoint_activations = self.section.activation_checkpointing
        return model

    def describe(self) -> str:
        return (f"reward: {len(self.pairs)} preference pairs ({len(self.bad)} bad rows, {self.cut} cut to max_len) "
                f"-> {self.out}")

    def loss_fn(self, engine, batch):
        section = self.section
        if "labels" not in batch:  # held-out batches, or lm_coef 0: the pairwise loss alone
            losses = pair_loss(engine(batch["input_ids"], batch["lengths"]), section.margin, section.center_coef)
            return losses.sum(), torch.tensor(losses.numel(), device=losses.device)
        rewards, lm_sum, lm_count = engine(batch["input_ids"], batch["lengths"], batch["labels"])
        losses = pair_loss(rewards, section.margin, section.center_coef)
        # two terms, each averaged over its own unit across the step: pairs, and target tokens
        return (torch.stack([losses.sum().float(), section.lm_coef * lm_sum.float()]),
                torch.stack([torch.tensor(losses.numel(), device=losses.device), lm_count]))

    @staticmethod
    def count_fn(batch):
        """What loss_fn counts, read before the forward passes: pairs (and chosen-side targets)."""
        pairs = torch.tensor(batch["input_ids"].size(0) // 2)
        return pairs if "labels" not in batch else torch.stack([pairs, (batch["labels"] != -100).sum().cpu()])

    def trainer_kwargs(self) -> dict:
        section, cfg, pad = self.section, self.cfg, self.pad
        ids_only = lambda side: side if isinstance(side[0], int) else side[0]  # noqa: E731
        # real tokens (not padding) per pair, on average
        pair_tokens = sum(len(ids_only(c)) + len(ids_only(r)) for c, r in self.pairs) / len(self.pairs)
        flops = cfg.flops_per_token(section.max_len, lm_head=False)
        if section.lm_coef:  # the chosen half also goes through the vocabulary head
            flops = (flops + cfg.flops_per_token(section.max_len, lm_head=True)) / 2
        return {"tokens_per_sample": pair_tokens, "flops_per_token": flops, "loss_fn": self.loss_fn,
                "collate": lambda items: pad_pairs(items, pad), "perplexity": False, "count_fn": self.count_fn}

    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        save_reward_model(self.final_dir(), state, self.cfg)
        return self.final_dir(), {"weights": "final/model.safetensors"}

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        section, before = self.section, self.before
        after = (pair_metrics(load_reward_model(final_dir), self.held, self.held_tasks, self.pad,
                              decode=self.tokenizer.decode) if self.held else None)
        summary["accuracy_before"] = before["accuracy"] if before else None
        summary["accuracy_after"] = after["accuracy"] if after else None
        forgetting = self.forgetting_after(load_reward_model(final_dir).backbone)
        quality, counts = self.data_quality("pairs used", len(self.pairs), {"cut to max_len": self.cut}, self.held_bad)
        extra = {"Data quality": quality,
                 "Forgetting: next-token loss on the pretraining validation text (the backbone's LM head)":
                     forgetting_rows(forgetting, "base model", "reward model",
                                     self.section.forgetting_samples)}
        for label, m in (("base model + untrained head", before), ("reward model", after)):
            if m:
                extra[f"Held-out pairs: {label}"] = {
                    "pairwise accuracy": m["accuracy"], "mean chosen reward": m["mean_chosen"],
                    "mean rejected reward": m["mean_rejected"], "mean margin": m["mean_margin"],
                    **{f"accuracy: {t}": v for t, v in m["by_task"].items()}}
        data = {"pairs": len(self.pairs), "held-out pairs": len(self.held), "max length": section.max_len,
                "base model": self.base_dir, "training file": section.train_file}
        line = (f"reward: {summary['steps']} steps, held-out pairwise accuracy {percent(summary['accuracy_before'])} -> "
                f"{percent(summary['accuracy_after'])}; see {self.out}/report.md")
        return Outcome(data, counts, line, extra,
                       manifest={"heldout": {"before": before, "after": after}, "forgetting": forgetting})
