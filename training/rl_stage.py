"""The RL stage: online reinforcement learning of the SFT model with GRPO (or RLOO), guided by the
reward model and verifiable checkers.

    SFT model (policy, trained) + a frozen copy (KL reference) + prompts with reference answers
      ─► each step: G completions per prompt sampled from the current policy (KV cache)
      ─► rewards: Σ weight · source (checker, reward model, length/format penalty)
      ─► group-relative advantages ─► clipped policy-gradient loss + β·KL(π‖π_ref) ─► 10-rl/final/

Rollouts are made inside the trainer's data path: the training set is the prompts, and each
micro batch's collate samples, scores and pads its completions with the policy's current
weights, so checkpoints, resume, signal stop, several ranks and the step's token-weighted loss
average (training/loop.py) work as for every other stage. Each prompt's completions are drawn
from a generator seeded by (seed, step, prompt index): a resumed run, or one split over other
ranks, samples exactly the completions of an uninterrupted single-rank run.

The loss is training/rl.py's `grpo_loss` (one optimizer step per rollout, so the old policy is
the policy itself, detached: TRL's GRPOTrainer with num_iterations=1). The reference's per-token
log-probabilities are computed in the collate (no gradient). Per step the metrics log holds the
mean reward of each source, the mean KL to the reference, the KL coefficient used (fixed, or
adaptive: training/rl.py `KLController`, whose state every checkpoint holds), the clip fraction,
the mean completion length, the truncated fraction, the share of groups with zero reward variance, reward errors and,
when both the reward model and the checker score the samples, the reward-hacking rate (how often
the reward model prefers an answer the checker marks wrong).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Optional

import torch
from torch.utils.data import Dataset

from llmdata.chat import BadRow, Message, prompt_and_reference, question_row, read_rows
from training.exact_match import exact_match, exact_match_rows, overlap_rows, prompt_key
from training.forgetting import forgetting_rows
from training.generate import Sampling
from training.options import RLSection
from training.recipe import Outcome, TunedRecipe
from training.report import percent
from training.rewards import (LengthFormatPenalty, RewardModelScorer, RewardSource, exact_match_reward, require_scored,
                              reward_hacking_rate, score_completions)
from training.rl import (KLController, completion_stats, group_advantages, grpo_loss, label_logps, pad_completions,
                         policy_kl, position_kl, reward_inputs, sample_groups, tempered_logits)
from training.stage import TrainingInputError, folder_fingerprint, require

#: the per-step sums the stage keeps (all-reduced over ranks before they are logged)
_ERROR_ROWS_PER_STEP = 8  # reward error rows kept in a step's metrics (all of them are counted)
_SUMS = ("completions", "completion_tokens", "truncated", "groups", "zero_variance_groups", "reward_errors",
         "reward_model_cut", "kl_sum", "kl_k3_sum", "clipped", "tokens", "hacked", "hacking_pairs")


#: logits per chunk of rows when the reference's log-probs and the exact KL are computed (2**24
#: float32 values: 64 MB per tensor)
_KL_CHUNK_ELEMENTS = 1 << 24


class PromptSet(Dataset):
    """Prompt indices: the trainer's sampler draws them, the rollout collate reads the prompts."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"prompt": i}


def read_prompts(path: str) -> tuple[list[list[Message]], list[Optional[str]], list[BadRow]]:
    """(prompts, reference answers, bad rows) of a conversation file: each
    conversation up to its last assistant turn is a prompt, that turn its reference (None when it
    has none)."""
    prompts, references, bad = [], [], []
    for item in map(question_row, read_rows(path, "sft")):
        if isinstance(item, BadRow):
            bad.append(item)
            continue
        context, reference = prompt_and_reference(item.parsed)
        prompts.append(context)
        references.append(reference)
    return prompts, references, bad


def sample_seed(seed: int, step: int, prompt: int) -> int:
    """The seed of one prompt's completions at one optimizer step (independent of ranks and resume)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{step}:{prompt}".encode()).digest()[:8], "little") >> 1


class RLRecipe(TunedRecipe):
    """GRPO / RLOO of the base model with the configured reward sources (module docstring)."""

    stage, title = "rl", "Reinforcement learning (GRPO)"
    section: RLSection

    def reward_model_dir(self) -> Optional[str]:
        """The reward model folder when a source or best-of-N uses it, else None."""
        r = self.section.rewards
        if not (r.reward_model or self.section.best_of):
            return None
        return r.reward_model_dir or os.path.join(os.path.dirname(os.path.abspath(self.out)), "08-reward", "final")

    def inputs(self) -> dict:
        inputs = super().inputs()
        rm = self.reward_model_dir()
        if rm:
            require(os.path.join(rm, "model.safetensors"), "reward model for rl.rewards.reward_model / rl.best_of (model.safetensors)")
            inputs["reward_model"] = folder_fingerprint(rm)
        return inputs

    def prepare(self) -> None:
        from training.best_of_n import load_matching_reward_model
        from training.export import load_model

        section = self.section
        self.load_tokenizer()
        self.prompts, self.references, self.bad = read_prompts(section.train_file)
        self.train_prompts = frozenset(prompt_key(p) for p in self.prompts)
        if not self.prompts:
            raise TrainingInputError(f"rl: no usable prompt in {section.train_file} ({len(self.bad)} bad rows)")
        self.held_rows, self.held_bad = [], []
        if section.heldout_file:
            for item in map(question_row, read_rows(section.heldout_file, "sft")):
                if isinstance(item, BadRow):
                    self.held_bad.append(item)
                else:
                    self.held_rows.append((item.row.get("task", "all"), item.parsed))
            if not self.held_rows:  # configured but empty: exact match would silently be n/a
                raise TrainingInputError(f"rl: no usable conversation in rl.heldout_file {section.heldout_file} "
                                         f"({len(self.held_bad)} bad rows); fix it, or set rl.heldout_file: null")
        self.model = self.load_base("max_new_tokens")
        self.cfg = self.model.cfg
        self.reference = load_model(self.base_dir).eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.reward_model = load_matching_reward_model(self.reward_model_dir(), self.tokenizer) if self.reward_model_dir() else None
        self.pretrain_text(None)
        self.train_set = PromptSet(len(self.prompts))
        self.sampling = Sampling(section.max_new_tokens, section.temperature, section.top_k, section.top_p)
        self.sources, self.monitors = self.reward_sources()
        self.sums = dict.fromkeys(_SUMS, 0.0)
        self.reward_sums: dict[str, list[float]] = {}
        self.error_rows: list[dict] = []  # this step's reward error rows on this rank (the first few)
        self.kl_control = KLController(section.kl_coef, section.kl_control, section.kl_target, section.kl_horizon)

    def reward_sources(self) -> tuple[list[RewardSource], list[RewardSource]]:
        """(the sources whose weighted sum is the reward, the sources only reported): the checker
        monitors when it has no weight (every prompt has its reference answer: read_prompts), the
        reward model when it is loaded (for best-of-N) but has none."""
        r = self.section.rewards
        sources, monitors = [], []
        checker = RewardSource("checker", exact_match_reward, r.checker)
        if r.checker:
            sources.append(checker)
        else:
            monitors.append(checker)
        self.reward_scorer = RewardModelScorer(self.reward_model, self.template) if self.reward_model is not None else None
        if self.reward_scorer is not None:
            scorer = RewardSource("reward_model", self.reward_scorer, r.reward_model)
            (sources if r.reward_model else monitors).append(scorer)
        if r.truncated or r.per_token:
            sources.append(RewardSource("length_format", LengthFormatPenalty(r.truncated, r.per_token), 1.0))
        return sources, monitors

    def model_to_train(self, rank: int) -> torch.nn.Module:
        model, section = self.model, self.section
        self.before = (exact_match(model, self.template, self.held_rows, section.eval_generate, section.max_new_tokens,
                                   train_prompts=self.train_prompts) if rank == 0 and self.held_rows else None)
        self.best_of_cut = 0
        self.best_of_before = self.best_of_n_exact_match(model) if rank == 0 and self.held_rows and section.best_of else None
        self.measure_forgetting_before(model, rank)
        model.train()
        model.checkpoint_activations = section.activation_checkpointing
        return model

    def best_of_n_exact_match(self, model: torch.nn.Module) -> dict[str, dict]:
        """Held-out exact match of best-of-N (training/best_of_n.py) from `model` with the reward
        model: N = `best_of` answers sampled per prompt (a generator seeded by the seed), scored
        once, then chosen both ways: {"max": the highest-scored one, "vote": the reward-weighted
        vote (`best_of_vote_temperature`)}, each `exact_match`'s result."""
        from training.best_of_n import best_of_n, select

        section = self.section
        gen = torch.Generator().manual_seed(section.seed)
        scored: list[list[tuple[str, float]]] = []

        def sample_and_keep(context) -> str:
            best, candidates, cut = best_of_n(model, self.reward_model, self.template, context, section.best_of,
                                              self.sampling, gen)
            scored.append(candidates)
            self.best_of_cut += sum(cut)
            return best

        results = {"max": exact_match(model, self.template, self.held_rows, section.eval_generate,
                                      section.max_new_tokens, answer=sample_and_keep, train_prompts=self.train_prompts)}
        votes = iter([select(c, "vote", section.best_of_vote_temperature) for c in scored])
        results["vote"] = exact_match(model, self.template, self.held_rows, section.eval_generate,
                                      section.max_new_tokens, answer=lambda context: next(votes),
                                      train_prompts=self.train_prompts)
        return results

    def describe(self) -> str:
        s = self.section
        weights = ", ".join(f"{src.name} x{src.weight:g}" for src in self.sources)
        return (f"rl: {len(self.prompts)} prompts ({len(self.bad)} bad rows), {s.group_size} completions each, "
                f"{s.advantage.upper()} with KL coefficient {s.kl_coef:g}"
                + (f" (adaptive towards KL {s.kl_target:g})" if s.kl_control == "adaptive" else "")
                + f"; reward = {weights} -> {self.out}")

    # ---- rollouts and loss -----------------------------------------------------------------------
    def attach(self, trainer) -> None:
        self.trainer = trainer
        self.reference.to(trainer.engine.device)
        if self.reward_model is not None:
            self.reward_model.to(trainer.engine.device)

    def rollout(self, items: list[dict]) -> dict[str, torch.Tensor]:
        """The collate: sample each prompt's group with the current policy, score it, and return
        the padded completions with their advantages and reference log-probs."""
        section, engine = self.section, self.trainer.engine
        policy = engine.module
        device = engine.device
        indices = [it["prompt"] for it in items]
        # each prompt's completions from its own seed, whichever prompts share the batch (ranks, resume)
        gens = [torch.Generator(device=device).manual_seed(sample_seed(section.seed, self.trainer.step, i)) for i in indices]
        completions = sample_groups(policy, self.template, [self.prompts[i] for i in indices], section.group_size,
                                    self.sampling, gens)
        inputs = reward_inputs(completions, [self.prompts[i] for i in indices], [self.references[i] for i in indices])
        scores = score_completions(inputs, self.sources)
        watched = score_completions(inputs, self.monitors) if self.monitors else None
        for scored in (scores, watched):
            if scored is not None:
                require_scored(scored, f"the rollout of step {self.trainer.step + 1}")
        adv = group_advantages(scores.total.view(len(indices), section.group_size), section.scale_rewards,
                               baseline="leave_one_out" if section.advantage == "rloo" else "mean")
        batch = pad_completions(completions, self.pad, keep=adv.valid.flatten().tolist())
        batch["advantages"] = adv.advantages.flatten()
        self._record(completions, scores, watched, adv)
        for scored in (scores, watched):
            for e in (scored.errors if scored is not None else []):
                if len(self.error_rows) < _ERROR_ROWS_PER_STEP:
                    it = inputs[e.sample]
                    self.error_rows.append({"prompt": it.messages[-1]["content"][:200] if it.messages else "",
                                            "completion": it.text[:200], "source": e.source, "reason": e.reason})
        return batch

    def _record(self, completions, scores, watched, adv) -> None:
        stats = completion_stats(completions)
        n = len(completions)
        s = self.sums
        s["completions"] += n
        s["completion_tokens"] += stats["completion_tokens"] * n
        s["truncated"] += stats["truncated_fraction"] * n
        s["groups"] += adv.zero_variance.numel()
        s["zero_variance_groups"] += float(adv.zero_variance.sum())
        s["reward_errors"] += len(scores.errors) + (len(watched.errors) if watched else 0)  # monitors' too
        if self.reward_scorer is not None:
            s["reward_model_cut"] += self.reward_scorer.cut
            self.reward_scorer.cut = 0
        per_source = {**scores.per_source, "total": scores.total, **(watched.per_source if watched else {})}
        for name, r in per_source.items():
            ok = r[~r.isnan()]
            total, count = self.reward_sums.setdefault(name, [0.0, 0.0])
            self.reward_sums[name] = [total + float(ok.sum()), count + ok.numel()]
        both = {**scores.per_source, **(watched.per_source if watched else {})}
        if "checker" in both and "reward_model" in both:
            g = self.section.group_size
            rate, pairs = reward_hacking_rate(both["reward_model"].view(-1, g), both["checker"].view(-1, g))
            if pairs:
                s["hacked"] += rate * pairs
                s["hacking_pairs"] += pairs

    def loss_fn(self, engine, batch):
        labels, temperature = batch["labels"], self.section.temperature
        mask = labels != -100
        # logits at the completion tokens only, [K, V] (the prompts' positions would be most of [N, T, V])
        logits = tempered_logits(engine, batch["input_ids"], temperature, at=mask)
        logps = label_logps(logits, labels)
        ref_logps = torch.zeros_like(logps)
        with torch.no_grad():
            # the reference a few rows at a time (at most _KL_CHUNK_ELEMENTS logits): beside the
            # policy's logits and their graph, whole-batch reference logits and the KL's two
            # log-softmaxes would hold four more [K, V] tensors. The policy that sampled is the one
            # being trained (one optimizer step per rollout), so its logits give the exact
            # next-token KL along the sampled completions.
            per_row = mask.sum(1)
            first = torch.cumsum(per_row, 0) - per_row  # each row's first index into the [K, V] logits
            rows = max(1, _KL_CHUNK_ELEMENTS // max(1, int(per_row.max()) * logits.size(-1)))
            for start in range(0, mask.size(0), rows):
                part = slice(start, start + rows)
                ref_logits = tempered_logits(self.reference, batch["input_ids"][part], temperature, at=mask[part])
                ref_logps[part] = label_logps(ref_logits, labels[part])
                own = logits[int(first[start]): int(first[start]) + ref_logits.size(0)].detach()
                self.sums["kl_sum"] += float(position_kl(own, ref_logits, mask.new_ones(ref_logits.size(0))).sum())
        out = grpo_loss(logps, logps.detach(), ref_logps, batch["advantages"], mask,
                        self.section.clip_eps, self.kl_control.value)
        self.sums["kl_k3_sum"] += float(out.kl_sum)
        self.sums["clipped"] += float(out.clipped)
        self.sums["tokens"] += float(out.count)
        return out.loss_sum, out.count

    def step_metrics(self) -> dict:
        """This step's rollout metrics over all ranks (called by the trainer on every rank), and a
        fresh start for the next step: `kl_coef` is the β this step used; the KL controller then
        moves it for the next step (the same on every rank: the KL is all-reduced first).
        `reward_error_rows` holds the step's first `_ERROR_ROWS_PER_STEP` reward error rows over
        all ranks ({"prompt", "completion", "source", "reason"}), gathered only in a step that has
        any; `reward_errors` counts them all, the monitors' (reported, unweighted sources) too."""
        names = sorted(self.reward_sums)
        local = torch.tensor([self.sums[k] for k in _SUMS] + [v for n in names for v in self.reward_sums[n]],
                             dtype=torch.float64)
        world = self.trainer.world
        error_rows = self.error_rows
        if world > 1:
            import torch.distributed as dist

            local = local.to(self.trainer.engine.device)
            dist.all_reduce(local)
            local = local.cpu()
        values = dict(zip(_SUMS, local[: len(_SUMS)].tolist()))
        if world > 1 and values["reward_errors"]:  # the all-reduced count: every rank gathers, or none
            gathered: list = [None] * world
            dist.all_gather_object(gathered, error_rows)
            error_rows = [row for rows in gathered for row in rows][:_ERROR_ROWS_PER_STEP]
        self.error_rows = []
        rewards = local[len(_SUMS):].view(-1, 2).tolist() if names else []
        self.sums = dict.fromkeys(_SUMS, 0.0)
        self.reward_sums = {}

        def ratio(a: float, b: float) -> Optional[float]:
            return a / b if b else None

        out = {f"mean_reward_{name}": ratio(t, c) for name, (t, c) in zip(names, rewards)}
        out.update(kl=ratio(values["kl_sum"], values["tokens"]), kl_k3=ratio(values["kl_k3_sum"], values["tokens"]),
                   clip_fraction=ratio(values["clipped"], values["tokens"]),
                   completion_tokens=ratio(values["completion_tokens"], values["completions"]),
                   truncated_fraction=ratio(values["truncated"], values["completions"]),
                   zero_variance_groups=ratio(values["zero_variance_groups"], values["groups"]),
                   reward_errors=values["reward_errors"], reward_error_rows=error_rows,
                   reward_model_cut=values["reward_model_cut"],
                   reward_hacking=ratio(values["hacked"], values["hacking_pairs"]), kl_coef=self.kl_control.value)
        self.kl_control.update(out["kl"])
        return out

    def trainer_kwargs(self) -> dict:
        s = self.section
        # a prompt's tokens (as sampling cuts them to leave room for the answer) plus max_new_tokens,
        # per completion: an upper bound of what the step processes
        room = max(self.cfg.max_seq_len - s.max_new_tokens, 1)
        prompt_tokens = sum(min(len(self.template.prompt(p)), room) for p in self.prompts) / len(self.prompts)
        per_prompt = s.group_size * (prompt_tokens + s.max_new_tokens)
        return {"tokens_per_sample": per_prompt, "flops_per_token": self.cfg.flops_per_token(int(prompt_tokens) + s.max_new_tokens),
                "loss_fn": self.loss_fn, "collate": self.rollout, "perplexity": False,
                "step_metrics": self.step_metrics, "stage_state": self.kl_control}

    # ---- after training ----------------------------------------------------------------------------
    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        from training.export import save_model

        save_model(self.final_dir(), state, self.cfg)
        return self.final_dir(), {"weights": "final/model.safetensors"}

    def held_prompts(self) -> list:
        """The prompts of the held-out rows answered for exact match (the first `eval_generate`)."""
        return [p for p in (prompt_and_reference(m)[0] for _, m in self.held_rows[: self.section.eval_generate]) if p]

    def heldout_kl(self, tuned: torch.nn.Module, prompts: list) -> Optional[float]:
        """training/rl.py `policy_kl` of the trained policy on `prompts` (None when not measured)."""
        section = self.section
        if not section.kl_heldout_samples or not prompts:
            return None
        reference = self.reference.to(next(tuned.parameters()).device)
        kl, _ = policy_kl(tuned, reference, self.template, prompts, section.kl_heldout_samples, self.sampling, self.pad,
                          torch.Generator().manual_seed(section.seed))
        return kl

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        from training.export import load_model
        from training.metrics import read_metrics

        section, before = self.section, self.before
        tuned = load_model(final_dir)
        after = (exact_match(tuned, self.template, self.held_rows, section.eval_generate, section.max_new_tokens,
                             train_prompts=self.train_prompts) if self.held_rows else None)
        summary["exact_match_before"] = before["exact_match"] if before else None
        summary["exact_match_after"] = after["exact_match"] if after else None
        forgetting = self.forgetting_after(tuned)
        steps = [r for r in read_metrics(os.path.join(self.out, "metrics.jsonl")) if r.get("event") == "train"]
        kls = [r["kl"] for r in steps if r.get("kl") is not None]
        window = max(1, min(10, len(kls)))
        kl_window_max = max((sum(kls[i:i + window]) / window for i in range(len(kls) - window + 1)), default=None)
        held_prompts = self.held_prompts()
        held_kl = self.heldout_kl(tuned, held_prompts)
        last = steps[-10:]

        def mean_of(key: str) -> Optional[float]:
            vals = [r[key] for r in last if r.get(key) is not None and not math.isnan(r[key])]
            return sum(vals) / len(vals) if vals else None

        rewards = sorted(k for k in (steps[-1] if steps else {}) if k.startswith("mean_reward_"))
        first = {k: next((r[k] for r in steps if r.get(k) is not None), None) for k in rewards}
        judged = {f"the largest {window}-step mean": kl_window_max, "the held-out KL": held_kl}
        judged = {name: k for name, k in judged.items() if k is not None and not math.isnan(k)}
        run = {"mean KL to the reference, last 10 steps (nats per token)": mean_of("kl"),
               f"largest mean KL over {window} consecutive steps"
               + (f" (the run has {len(kls)})" if len(kls) < 10 else ""): kl_window_max,
               "largest step KL (one step's prompts)": max(kls) if kls else None,
               **({f"KL of the final policy on {len(held_prompts)} held-out prompts "
                   f"({section.kl_heldout_samples} samples each)": held_kl} if held_kl is not None else {}),
               **({"KL target": section.kl_target,
                   f"KL stayed under the target ({' and '.join(judged) or 'nothing measured'})":
                       "yes" if judged and max(judged.values()) <= section.kl_target else "no"}
                  if section.kl_target else {}),
               **({"KL coefficient (adaptive, horizon %g steps): first step -> last step -> next" % section.kl_horizon:
                   f"{steps[0].get('kl_coef', section.kl_coef):.4g} -> {steps[-1].get('kl_coef', section.kl_coef):.4g} -> "
                   f"{self.kl_control.value:.4g}"} if section.kl_control == "adaptive" and steps else {}),
               "clip fraction, last 10 steps": mean_of("clip_fraction"),
               "completion tokens, last 10 steps": mean_of("completion_tokens"),
               "truncated completions, last 10 steps": mean_of("truncated_fraction"),
               "groups with zero reward variance, last 10 steps": mean_of("zero_variance_groups"),
               "reward errors (all steps)": sum(r.get("reward_errors") or 0 for r in steps),
               **({"completions the reward model scored on a shortened input (all steps)":
                   sum(r.get("reward_model_cut") or 0 for r in steps)} if self.reward_model is not None else {}),
               "reward hacking: reward model prefers a wrong answer, last 10 steps": mean_of("reward_hacking")}
        for k in rewards:
            run[f"{k.replace('_', ' ')}: first step -> last 10 steps"] = (
                f"{first[k]:.3f} -> {mean_of(k):.3f}" if first[k] is not None and mean_of(k) is not None else "n/a")
        summary.update(kl_last=mean_of("kl"), kl_max=max(kls) if kls else None, kl_max_10_steps=kl_window_max,
                       kl_heldout=held_kl, kl_coef_final=self.kl_control.value,
                       reward_hacking_last=mean_of("reward_hacking"),
                       **{f"{k}_last": mean_of(k) for k in rewards})
        quality, counts = self.data_quality("prompts used", len(self.prompts), {}, self.held_bad)
        extra = {"Data quality": quality, "Rollouts and rewards": run,
                 "Forgetting: next-token loss on the pretraining validation text": forgetting_rows(
                     forgetting, "base model", "rl", self.section.forgetting_samples)}
        if before and after:
            extra["Exact match on held-out prompts (greedy)"] = {
                **overlap_rows(after), **exact_match_rows(before, "base model"),
                **exact_match_rows(after, "rl")}
        if self.best_of_before:
            extra[f"Exact match on held-out prompts: best-of-{section.best_of} with the reward model, from the base model"] = {
                **exact_match_rows(self.best_of_before["max"], f"best-of-{section.best_of}, highest reward"),
                **exact_match_rows(self.best_of_before["vote"], f"best-of-{section.best_of}, reward-weighted vote "
                                   f"(temperature {section.best_of_vote_temperature:g})"),
                "answers the reward model scored on a shortened input": self.best_of_cut}
            summary["best_of_n_exact_match"] = self.best_of_before["max"]["exact_match"]
            summary["best_of_n_vote_exact_match"] = self.best_of_before["vote"]["exact_match"]
        errors = [(r["step"], row) for r in steps for row in r.get("reward_error_rows") or []]
        if errors:
            extra["Reward errors: the first 10 (metrics.jsonl's reward_error_rows keep 8 a step)"] = {
                f"step {step}, {row['source']} ({k + 1})": f"{row['reason']} (completion {row['completion']!r} to "
                                                          f"{row['prompt']!r})" for k, (step, row) in enumerate(errors[:10])}
        samples = [{"prompt": f"[{e['task']}] {e['prompt']}", "completion": f"\n→ {e['answer']}   (reference: {e['reference']})"}
                   for e in (after or {}).get("examples", [])]
        data = {"prompts": len(self.prompts), "completions per prompt": section.group_size,
                "advantage": section.advantage, "reward": ", ".join(f"{s.name} x{s.weight:g}" for s in self.sources),
                "KL coefficient": (section.kl_coef if section.kl_control == "fixed" else
                                   f"adaptive from {section.kl_coef:g} towards KL {section.kl_target:g} "
                                   f"(horizon {section.kl_horizon:g} steps)"), "clip epsilon": section.clip_eps, "temperature": section.temperature,
                "max new tokens": section.max_new_tokens, "base model (and reference)": self.base_dir,
                "prompts file": section.train_file, "reward model": self.reward_model_dir()}
        line = (f"rl: {summary['steps']} steps, mean KL {_fmt(summary['kl_last'])}, exact match "
                f"{percent(summary['exact_match_before'])} -> {percent(summary['exact_match_after'])}"
                + (f", reward hacking {percent(summary['reward_hacking_last'])}" if summary["reward_hacking_last"] is not None
                   else "") + f"; see {self.out}/report.md")
        return Outcome(data, counts, line, extra, samples,
                       {"exact_match": {"before": before, "after": after, "best_of_n_before": self.best_of_before},
                        "forgetting": forgetting,
                        "rewards": {"sources": {s.name: s.weight for s in self.sources},
                                    "monitors": [m.name for m in self.monitors]},
                        "metrics_last_10_steps": json.loads(json.dumps(run, default=str))})


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.4f}"
