"""The DPO stage: direct preference optimization of a trained model on preference pairs.

    SFT model (policy, trained) + a frozen copy (reference) + {"prompt", "chosen", "rejected"} JSONL
      ─► log π(y|x) summed over the response's tokens ─► DPO loss ─► 09-dpo/final/

Loss per pair (Rafailov et al. 2023), with h = β·[(log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))]:
−(1 − ε)·log σ(h) − ε·log σ(−h), ε the label smoothing of conservative DPO (0 = plain DPO).
The reference never changes, so its log-probabilities are computed once, before training, for the
pairs the run's seeded sampler will draw (max_steps x global batch of them), and travel with each
pair: no second model in memory or in the step (TRL's precompute_ref_log_probs).
They are computed through the DeepSpeed engine once it is built, so in the policy's precision
(under bf16 the policy and the reference are the same numbers at step 0).
With `rpo_alpha` > 0 the loss also has RPO's negative log-likelihood term on the chosen responses
(Pang et al. 2024, "Iterative Reasoning Preference Optimization", v3; TRL's DPOConfig.rpo_alpha,
now loss_type ["sigmoid", "sft"] with loss_weights [1, α]): DPO only pushes the chosen and the
rejected log-likelihoods apart, and on pairs that differ in a token or two both fall together, so
the policy ranks better while it answers worse; the NLL term holds the chosen answers up.
loss = mean over the step's pairs of the DPO loss + rpo_alpha · mean over the step's chosen
response target tokens of −log π(token) (see `dpo_rpo_terms` for the normalization).
β·(log π − log π_ref) is DPO's implicit reward; the held-out metrics are its pairwise accuracy,
mean rewards and margin, beside how often the policy itself ranks chosen above rejected by
log-likelihood, and exact match on held-out instructions so a policy that forgets shows it.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from llmdata.chat import BadRow, inputs_and_labels, read_rows
from training.exact_match import exact_match, exact_match_rows, overlap_rows, prompt_key
from training.forgetting import forgetting_rows
from training.options import DPOSection
from training.recipe import Outcome, TunedRecipe
from training.report import percent
from training.stage import TrainingInputError

#: One side of a pair: (input ids, labels with -100 outside the response)
Side = tuple[list[int], list[int]]


def sides(pairs: list[tuple[tuple[list[int], list[bool]], tuple[list[int], list[bool]]]]) -> list[tuple[Side, Side]]:
    """Each (ids, training mask) of a pair as next-token inputs and labels: the loss and the
    log-probabilities count the response tokens (and its end token) only."""
    return [(inputs_and_labels(*chosen), inputs_and_labels(*rejected)) for chosen, rejected in pairs]


def pad_sides(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen sequences then rejected ones, right-padded to the longest (labels with -100)."""
    seqs = [it["chosen"] for it in items] + [it["rejected"] for it in items]
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
    batch = {"input_ids": input_ids, "labels": labels}
    if "ref" in items[0]:
        batch["ref"] = torch.tensor([it["ref"][0] for it in items] + [it["ref"][1] for it in items], dtype=torch.float64)
    return batch


def token_logps(model: Callable, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label) at each position of [rows, positions] `input_ids`, in fp32, 0 where the label
    is -100: shape [rows, positions]."""
    logits = model(input_ids)["logits"].float()
    picked = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * (labels != -100)


def sequence_logps(model: Callable, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over each row's labelled positions, in fp32: shape [rows]."""
    return token_logps(model, input_ids, labels).sum(-1)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-pair DPO loss from [chosen..., rejected...] sequence log-probabilities."""
    half = policy.size(0) // 2
    ratio = policy - reference.to(policy.dtype)
    h = beta * (ratio[:half] - ratio[half:])
    return -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)


def dpo_rpo_terms(picked: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor, beta: float,
                  label_smoothing: float, rpo_alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The RPO loss of a [chosen..., rejected...] micro batch as the trainer's two terms:
    (sums, counts) = ([Σ_pairs DPO loss, rpo_alpha · Σ −log π over the chosen target tokens],
    [pairs, chosen target tokens]), shapes [2] and [2].

    `picked` is `token_logps` of the batch ([2·pairs, positions], 0 off the response), `labels`
    its next-token labels (-100 off the response), `reference` the reference's sequence
    log-probabilities ([2·pairs]). The trainer divides each sum by its count over the whole
    optimizer step (all micro batches and data-parallel ranks; training/loop.py), so the NLL term
    is the mean over every chosen response token of the step: a token weighs the same whatever its
    response's length and whichever micro batch it falls in, and the loss does not change with
    micro_batch, grad_accum or the number of ranks. TRL (dpo_trainer.py, `nll_loss`:
    F.cross_entropy over the micro batch's flattened chosen tokens, added to every pair's loss
    before the mean) takes the token mean per micro batch and then averages micro batches and
    devices equally, so a token in a micro batch of short answers weighs more than one in a
    micro batch of long ones; the RPO paper divides each sequence's NLL by its own length.
    With equal micro batches of equal token counts all three agree."""
    half = picked.size(0) // 2
    losses = dpo_loss(picked.sum(-1), reference, beta, label_smoothing)
    chosen = labels[:half] != -100
    nll_sum = -picked[:half].sum()
    return (torch.stack([losses.sum(), rpo_alpha * nll_sum]),
            torch.stack([torch.tensor(losses.numel(), device=losses.device), chosen.sum()]))


def chosen_nll(logps: list[tuple[float, float]], pairs: list[tuple[Side, Side]]) -> Optional[float]:
    """Mean −log π per chosen response target token (nats), from the pairs' (chosen, rejected)
    sequence log-probabilities: −Σ log π(y_c|x) / Σ |y_c|; None without pairs."""
    tokens = sum(sum(label != -100 for label in chosen[1]) for chosen, _ in pairs)
    return -sum(c for c, _ in logps) / tokens if tokens else None


def _nats(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class PreferenceSet(Dataset):
    """Preference pairs with, once `ref` is set, their reference log-probs; `ref[i]` None marks a
    pair whose log-probs were not computed (a pair the run was not going to draw)."""

    def __init__(self, pairs: list[tuple[Side, Side]], ref: Optional[list[Optional[tuple[float, float]]]] = None):
        self.pairs = pairs
        self.ref = ref

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        chosen, rejected = self.pairs[i]
        item = {"chosen": chosen, "rejected": rejected}
        if self.ref is not None:
            if self.ref[i] is None:
                raise RuntimeError(f"dpo: pair {i} has no reference log-probs (only the pairs the run's sampler was "
                                   f"predicted to draw were computed)")
            item["ref"] = self.ref[i]
        return item


@torch.no_grad()
def pair_logps(model, pairs: list[tuple[Side, Side]], pad_id: int, batch: int = 32,
               device: Optional[torch.device] = None) -> list[tuple[float, float]]:
    """(log π(chosen|x), log π(rejected|x)) of every pair under `model` (a module or a DeepSpeed
    engine, whose batches go to `device`), in eval mode; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    out: list[tuple[float, float]] = []
    for start in range(0, len(pairs), batch):
        items = [{"chosen": c, "rejected": r} for c, r in pairs[start : start + batch]]
        padded = pad_sides(items, pad_id)
        if device is not None:
            padded = {k: v.to(device) for k, v in padded.items()}
        logps = sequence_logps(model, padded["input_ids"], padded["labels"]).tolist()
        out += list(zip(logps[: len(items)], logps[len(items):]))
    model.train(was_training)
    return out


def preference_metrics(policy: list[tuple[float, float]], reference: list[tuple[float, float]], tasks: list[str],
                       beta: float) -> dict:
    """Implicit-reward accuracy, mean rewards and margin, and the policy's own log-likelihood
    ranking, overall and per task."""
    n = len(policy)
    if not n:
        return {"pairs": 0}
    rewards = [(beta * (pc - rc), beta * (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, reference)]
    reward_right = [c > r for c, r in rewards]
    ranked_right = [pc > pr for pc, pr in policy]

    def per_task(right: list[bool]) -> dict[str, float]:
        groups: dict[str, list[bool]] = {}
        for task, ok in zip(tasks, right):
            groups.setdefault(task, []).append(ok)
        return {t: sum(v) / len(v) for t, v in sorted(groups.items())}

    return {"pairs": n, "reward_accuracy": sum(reward_right) / n, "loglik_accuracy": sum(ranked_right) / n,
            "mean_chosen_reward": sum(c for c, _ in rewards) / n, "mean_rejected_reward": sum(r for _, r in rewards) / n,
            "mean_margin": sum(c - r for c, r in rewards) / n,
            "by_task": per_task(reward_right), "loglik_by_task": per_task(ranked_right)}


class DPORecipe(TunedRecipe):
    """Direct preference optimization of the base model against itself as the frozen reference;
    held-out implicit-reward and log-likelihood ranking accuracy, exact match before and after."""

    stage, title = "dpo", "Direct preference optimization"
    section: DPOSection

    def data_files(self) -> dict:
        return {**super().data_files(), "eval": self.section.eval_file}

    def prepare(self) -> None:
        from training.finetune import load_conversations
        from training.reward import read_pairs

        section = self.section
        self.load_tokenizer()
        raw, _, self.bad, self.cut = read_pairs(section.train_file, self.template, section.max_len, masks=True)
        if not raw:
            raise TrainingInputError(f"dpo: no usable preference pair in {section.train_file} ({len(self.bad)} bad rows)")
        held_raw, self.held_tasks, self.held_bad, _ = (read_pairs(section.heldout_file, self.template, section.max_len,
                                                                  masks=True) if section.heldout_file else ([], [], [], 0))
        self.pairs, self.held = sides(raw), sides(held_raw)
        _, self.eval_rows, self.eval_bad, _ = (load_conversations(section.eval_file, self.template, section.max_len, questions=True)
                                               if section.eval_file else ([], [], [], 0))
        if section.eval_file and not self.eval_rows:  # configured but empty: exact match would silently be n/a
            raise TrainingInputError(f"dpo: no usable conversation in dpo.eval_file {section.eval_file} "
                                     f"({len(self.eval_bad)} bad rows); fix it, or set dpo.eval_file: null")
        self.train_prompts = frozenset(prompt_key(item.parsed.prompt) for item in
                                       read_rows(section.train_file, "preference") if not isinstance(item, BadRow))
        self.model = self.load_base("max_len")
        self.cfg = self.model.cfg
        self.pretrain_text(None)
        self.train_set = PreferenceSet(self.pairs)
        self.val_set = PreferenceSet(self.held) if self.held else None

    def model_to_train(self, rank: int) -> torch.nn.Module:
        model, section = self.model, self.section
        self.em_before = (exact_match(model, self.template, self.eval_rows, section.eval_generate,
                                      section.max_new_tokens, train_prompts=self.train_prompts)
                          if rank == 0 and self.eval_rows else None)
        # the fp32 reference on held-out pairs, for the fp32 final weights' metrics after training
        self.ref_held_fp32 = pair_logps(model, self.held, self.pad) if rank == 0 and self.held else []
        self.measure_forgetting_before(model, rank)
        model.train()
        model.checkpoint_activations = section.activation_checkpointing
        return model

    def describe(self) -> str:
        return (f"dpo: {len(self.pairs)} preference pairs ({len(self.bad)} bad rows, {self.cut} cut to max_len); "
                f"reference log-probabilities from {self.base_dir} -> {self.out}")

    def loss_fn(self, engine, batch):
        section = self.section
        if section.rpo_alpha:  # two terms, each averaged over its own unit across the step: pairs, chosen tokens
            picked = token_logps(engine, batch["input_ids"], batch["labels"])
            return dpo_rpo_terms(picked, batch["labels"], batch["ref"], section.beta, section.label_smoothing,
                                 section.rpo_alpha)
        losses = dpo_loss(sequence_logps(engine, batch["input_ids"], batch["labels"]), batch["ref"], self.section.beta,
                          self.section.label_smoothing)
        return losses.sum(), torch.tensor(losses.numel(), device=losses.device)

    @staticmethod
    def rpo_count(batch) -> torch.Tensor:
        """What loss_fn counts with rpo_alpha > 0, read before the forward pass: pairs, chosen targets."""
        half = batch["input_ids"].size(0) // 2
        return torch.stack([torch.tensor(half), (batch["labels"][:half] != -100).sum().cpu()])

    def trainer_kwargs(self) -> dict:
        from training.loop import pair_count

        pad = self.pad
        pair_tokens = sum(len(c[0]) + len(r[0]) for c, r in self.pairs) / len(self.pairs)
        return {"tokens_per_sample": pair_tokens, "flops_per_token": self.cfg.flops_per_token(self.section.max_len),
                "loss_fn": self.loss_fn, "collate": lambda items: pad_sides(items, pad), "perplexity": False,
                "count_fn": self.rpo_count if self.section.rpo_alpha else pair_count}

    def attach(self, trainer) -> None:
        # The reference is the starting policy as the engine runs it (its precision: bf16 weights under
        # bf16), computed before a resume loads trained weights: at step 0, policy == reference exactly,
        # not up to the rounding between an fp32 module and its bf16 copy. Its log-probs never change.
        # Only the pairs the run will draw: max_steps global batches of the trainer's seeded sampler
        # (4,800 of the demo's 15,000); any other pair raises in PreferenceSet rather than train on nothing.
        engine = trainer.engine
        used = sorted(trainer.sampler.first_draws(self.section.max_steps * trainer.global_batch))
        ref: list[Optional[tuple[float, float]]] = [None] * len(self.pairs)
        for i, logps in zip(used, pair_logps(engine, [self.pairs[i] for i in used], self.pad, device=engine.device)):
            ref[i] = logps
        self.train_set.ref = ref
        self.ref_held = pair_logps(engine, self.held, self.pad, device=engine.device) if self.held else []
        if self.val_set is not None:
            self.val_set.ref = self.ref_held
        self.before = preference_metrics(self.ref_held, self.ref_held, self.held_tasks, self.section.beta) if self.held else None

    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        from training.export import save_model

        save_model(self.final_dir(), state, self.cfg)
        return self.final_dir(), {"weights": "final/model.safetensors"}

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        from training.export import load_model

        section, before, em_before = self.section, self.before, self.em_before
        tuned = load_model(final_dir)
        held_after = pair_logps(tuned, self.held, self.pad) if self.held else []
        after = preference_metrics(held_after, self.ref_held_fp32, self.held_tasks, section.beta) if self.held else None
        nll_before, nll_after = chosen_nll(self.ref_held_fp32, self.held), chosen_nll(held_after, self.held)
        em_after = (exact_match(tuned, self.template, self.eval_rows, section.eval_generate, section.max_new_tokens,
                                train_prompts=self.train_prompts) if self.eval_rows else None)
        summary.update(reward_accuracy_after=after["reward_accuracy"] if after else None,
                       loglik_accuracy_before=before["loglik_accuracy"] if before else None,
                       loglik_accuracy_after=after["loglik_accuracy"] if after else None,
                       exact_match_before=em_before["exact_match"] if em_before else None,
                       exact_match_after=em_after["exact_match"] if em_after else None,
                       chosen_nll_before=nll_before, chosen_nll_after=nll_after)
        forgetting = self.forgetting_after(tuned)
        quality, counts = self.data_quality("pairs used", len(self.pairs), {"cut to max_len": self.cut}, self.held_bad,
                                            (("exact-match file bad rows", section.eval_file, self.eval_bad),))
        extra: dict = {"Data quality": quality,
                       "Forgetting: next-token loss on the pretraining validation text": forgetting_rows(
                           forgetting, "reference", "dpo", self.section.forgetting_samples)}
        if after:
            extra["Held-out pairs"] = {
                "implicit reward accuracy (β·log π/π_ref, chosen > rejected)": after["reward_accuracy"],
                "log-likelihood ranking accuracy: reference": before["loglik_accuracy"],
                "log-likelihood ranking accuracy: DPO policy": after["loglik_accuracy"],
                "mean chosen reward": after["mean_chosen_reward"], "mean rejected reward": after["mean_rejected_reward"],
                "mean margin": after["mean_margin"],
                "chosen responses' NLL per token (nats): reference": nll_before,
                "chosen responses' NLL per token (nats): DPO policy": nll_after,
                **{f"implicit reward accuracy: {t}": v for t, v in after["by_task"].items()}}
        if em_before and em_after:
            extra["Exact match on held-out prompts (greedy)"] = {
                **overlap_rows(em_after), **exact_match_rows(em_before, "reference"),
                **exact_match_rows(em_after, "dpo")}
        samples = [{"prompt": f"[{e['task']}] {e['prompt']}", "completion": f"\n→ {e['answer']}   (reference: {e['reference']})"}
                   for e in (em_after or {}).get("examples", [])]
        data = {"pairs": len(self.pairs), "held-out pairs": len(self.held), "beta": section.beta,
                "RPO alpha (NLL on chosen)": section.rpo_alpha, "label smoothing": section.label_smoothing, "max length": section.max_len,
                "base model (and reference)": self.base_dir, "training file": section.train_file}
        line = (f"dpo: {summary['steps']} steps, held-out implicit reward accuracy {percent(summary['reward_accuracy_after'])} "
                f"(log-likelihood ranking {percent(summary['loglik_accuracy_before'])} -> "
                f"{percent(summary['loglik_accuracy_after'])}, chosen NLL {_nats(nll_before)} -> {_nats(nll_after)}), exact match {percent(summary['exact_match_before'])} -> "
                f"{percent(summary['exact_match_after'])}; see {self.out}/report.md")
        return Outcome(data, counts, line, extra, samples,
                       {"heldout": {"before": before, "after": after, "chosen_nll": {"before": nll_before, "after": nll_after}}, "exact_match": {"before": em_before, "after": em_after},
                        "forgetting": forgetting})
