"""The core of online RL with group-relative policy optimization (GRPO), stage-independent.

    prompts ─► sample_groups: G completions each (the model's KV-cache sampler) ─► rewards
      (training/rewards.py) [B, G] ─► group_advantages ─► pad_completions + token_logps of the
      policy, the old policy and the frozen reference ─► grpo_loss (sum, count) ─► the trainer;
      position_kl measures the KL to the reference that the report judges

GRPO (Shao et al. 2024, "DeepSeekMath", section 4.1) replaces PPO's value network with a group
baseline: each prompt gets G sampled completions, and a completion's advantage is its reward
minus the group's mean reward, divided by the group's standard deviation. RLOO (Ahmadian et al.
2024, "Back to basics: revisiting REINFORCE-style optimization for learning from human feedback")
uses the mean of the other G-1 rewards as the baseline instead. The loss is PPO's clipped
surrogate per completion token with GRPO's KL penalty to the reference (k3 estimator), as TRL's
GRPOTrainer computes it (trl/trainer/grpo_trainer.py, `_compute_loss`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple, Optional, Union

import torch
import torch.nn.functional as F

from llmdata.chat import ChatTemplate, Message
from training.generate import Sampling, by_length
from training.rewards import RewardInput


@dataclass(frozen=True)
class Completion:
    """One sampled completion of a prompt."""
    prompt: int  # index of its prompt in the batch of prompts
    prompt_ids: list[int]  # the ids the model continued (the template's prompt, left end cut to fit)
    completion_ids: list[int]  # sampled ids, ending with the stop id (<|end|> or <|endoftext|>) when `finished`
    text: str  # the completion decoded, without the stop token
    finished: bool  # ended with a stop token; False: cut at max_new_tokens or max_seq_len


def sample_groups(model, template: ChatTemplate, prompts: list[list[Message]], group_size: int, sampling: Sampling,
                  generator: Union[None, torch.Generator, list[torch.Generator]] = None) -> list[Completion]:
    """`group_size` completions of each prompt (chat messages, before the assistant's turn),
    prompt-major: completion g of prompt b is at index b * group_size + g.

    With one `generator` (or none), each group is one call of the model's KV-cache `generate`
    (training/model.py) on the prompt repeated `group_size` times, one prompt after another, all
    drawing from that generator. With a list, one generator per prompt (RL's per-prompt seeds),
    the groups of all prompts of one length in tokens are one call (`generate` has no left
    padding, so other lengths are not batched together), each group drawing from its own
    generator: the completions are those each prompt would get alone from its generator (the
    forward pass of a larger batch aside, which may differ in the last bits). Sampling is `sampling`'s temperature / top-k / top-p, up to
    `max_new_tokens`, stopping at the template's end-of-turn token <|end|>; a completion ends at
    its first <|end|> or <|endoftext|> (exact match's and the HF export's stops), which it keeps. As in
    training/generate.py, a prompt that leaves no room for max_new_tokens keeps its right end.
    The same generator states give the same completions; they must live on the model's device
    (torch.multinomial draws there). The model's train/eval mode is restored. `model` is the
    Transformer itself (a DeepSpeed engine's `.module`), which has `generate`.

    Raises ValueError for group_size < 1, a generator on another device than the model, or a
    list of generators that is not one per prompt.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1 (got {group_size})")
    per_prompt = isinstance(generator, list)
    if per_prompt and len(generator) != len(prompts):
        raise ValueError(f"{len(generator)} generators for {len(prompts)} prompts: give one per prompt")
    stop = template.end_id
    stops = (stop, template.eot_id)  # where an answer ends, as held-out exact match reads it (generate._answers_after)
    room = max(model.cfg.max_seq_len - sampling.max_new_tokens, 1)
    device = next(model.parameters()).device
    for g in (generator if per_prompt else [generator]):
        if g is not None and g.device.type != device.type:
            raise ValueError(f"the sampling generator is on {g.device}, the model on {device}: create it with "
                             f"torch.Generator(device={device.type!r})")
    prompt_ids = [template.prompt(messages)[-room:] for messages in prompts]
    if per_prompt:  # one call per prompt length, in the order the lengths first appear
        batches = by_length(prompt_ids)
    else:
        batches = [[b] for b in range(len(prompts))]
    was_training = model.training
    found: dict[int, list[Completion]] = {}
    try:
        for members in batches:
            batch = torch.tensor([prompt_ids[b] for b in members for _ in range(group_size)], device=device)
            seq = model.generate(batch, sampling.max_new_tokens, temperature=sampling.temperature, top_k=sampling.top_k,
                                 top_p=sampling.top_p, eos_id=stop,
                                 generator=[generator[b] for b in members] if per_prompt else generator)
            width = len(prompt_ids[members[0]])
            for k, row in enumerate(seq[:, width:].tolist()):
                b = members[k // group_size]
                end = next((i for i, t in enumerate(row) if t in stops), None)
                finished = end is not None
                new = row[: end + 1] if finished else row
                text = template.tok.decode(new[:-1] if finished else new)
                found.setdefault(b, []).append(Completion(b, list(prompt_ids[b]), new, text, finished))
    finally:
        model.train(was_training)
    return [c for b in range(len(prompts)) for c in found[b]]


def reward_inputs(completions: list[Completion], prompts: list[list[Message]],
                  references: list[Optional[str]]) -> list[RewardInput]:
    """What the reward sources (training/rewards.py `score_completions`) see of each completion:
    its prompt's messages and reference answer (`prompts[c.prompt]`, `references[c.prompt]`), text,
    ids and whether it finished. Raises ValueError when prompts and references differ in length."""
    if len(prompts) != len(references):
        raise ValueError(f"{len(prompts)} prompts but {len(references)} references")
    return [RewardInput(prompts[c.prompt], references[c.prompt], c.text, c.completion_ids, c.finished) for c in completions]


def completion_stats(completions: list[Completion]) -> dict[str, float]:
    """Rollout metrics: mean completion length in tokens (the end-of-turn token included) and the
    fraction cut before their end of turn (truncated); NaN for no completions."""
    n = len(completions)
    if not n:
        return {"completion_tokens": math.nan, "truncated_fraction": math.nan}
    return {"completion_tokens": sum(len(c.completion_ids) for c in completions) / n,
            "truncated_fraction": sum(not c.finished for c in completions) / n}


def pad_completions(completions: list[Completion], pad_id: int,
                    keep: Optional[list[bool]] = None) -> dict[str, torch.Tensor]:
    """Next-token inputs and labels of prompt + completion, right-padded to the longest:
    input_ids [N, T] (long) = (prompt_ids + completion_ids)[:-1], labels [N, T] (long) = the
    completion's ids at the positions that predict them, -100 elsewhere (prompt, padding). The
    labels != -100 are the completion tokens the loss averages over, so the trainer's
    `target_count` (training/loop.py) is this batch's CountFn. `keep[i]` False (a completion whose
    reward failed) makes row i all -100: no loss, no count."""
    seqs = [c.prompt_ids + c.completion_ids for c in completions]
    width = max(len(s) for s in seqs) - 1
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (c, s) in enumerate(zip(completions, seqs)):
        input_ids[i, : len(s) - 1] = torch.tensor(s[:-1])
        if keep is None or keep[i]:
            p = len(c.prompt_ids)
            labels[i, p - 1 : len(s) - 1] = torch.tensor(c.completion_ids, dtype=torch.long)
    return {"input_ids": input_ids, "labels": labels}


def tempered_logits(model: Callable, input_ids: torch.Tensor, temperature: float = 1.0,
                    at: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The next-token logits of `model` divided by `temperature`, float32: [N, T, V] at every
    position, or with `at` (a bool [N, T] mask, e.g. labels != -100) [K, V] at its K positions in
    row-major order, the head computed only there (`model`: a Transformer or a DeepSpeed engine
    around one, called as model(input_ids[, logits_at=at]), full causal attention over each
    right-padded row; the padding lies after every label, so it changes nothing). The division is
    TRL's `_get_per_token_logps`: the distribution the completions were sampled from (top-k /
    top-p truncation aside)."""
    logits = (model(input_ids) if at is None else model(input_ids, logits_at=at))["logits"].float()
    return logits / temperature if temperature != 1.0 else logits


def label_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[label] at every position, [N, T] float32, 0 where labels == -100
    (labels [N, T]; logits [N, T, V] aligned with them, or [K, V] at the K positions where
    labels != -100 in row-major order, as `tempered_logits(..., at=labels != -100)` gives them)."""
    if logits.dim() == 3:
        nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none")
        return -nll.view(labels.shape)
    mask = labels != -100
    out = torch.zeros(labels.shape, dtype=logits.dtype, device=logits.device)
    out[mask] = -F.cross_entropy(logits, labels[mask], reduction="none")
    return out


def token_logps(model: Callable, input_ids: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(label_t | ids_<=t) at every position, [N, T] float32, 0 where labels == -100:
    `label_logps` of `tempered_logits` computed at the labelled positions only. The per-token
    counterpart of training/dpo.py `sequence_logps` (whose sum over a row this equals at
    temperature 1)."""
    return label_logps(tempered_logits(model, input_ids, temperature, at=labels != -100), labels)


def position_kl(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(π(·|prefix) || π_ref(·|prefix)) at each position, [N, T] float32, 0 where `mask` is false:
    the exact divergence of the two next-token distributions, summed over the vocabulary
    (logits and ref_logits [N, T, V], already divided by the sampling temperature; mask [N, T];
    or any leading shape: [K, V] logits of K positions with a [K] mask).

    Averaged over the completion tokens of samples from π it estimates the same per-token KL as
    `grpo_loss`'s k3 on the sampled token (the sequence KL is the sum over its positions of the
    next-token KL at the sampled prefix), with less variance: the expectation over each position's
    token is taken exactly instead of from the one token sampled (Rao-Blackwellization; Schulman,
    "Approximating KL divergence", 2020, discusses k1-k3 as the single-sample alternatives). On the
    demo's RL policy, twelve batches of 32 prompts x 8 samples gave k3 0.027-0.092 (sd 0.021) and
    this 0.029-0.069 (sd 0.012) (`python bench/rl_kl_check.py`). Raises ValueError for mismatched
    shapes."""
    if logits.shape != ref_logits.shape or logits.shape[:-1] != mask.shape:
        raise ValueError(f"logits and ref_logits must be one [..., V] shape with mask [...] (got "
                         f"{tuple(logits.shape)}, {tuple(ref_logits.shape)}, {tuple(mask.shape)})")
    logp = F.log_softmax(logits.float(), dim=-1)
    ref = F.log_softmax(ref_logits.float(), dim=-1)
    kl = (logp.exp() * (logp - ref)).sum(-1)
    return kl.masked_fill(~mask.bool(), 0.0)


def policy_kl(policy, reference, template: ChatTemplate, prompts: list[list[Message]], samples: int,
              sampling: Sampling, pad_id: int, generator: Optional[torch.Generator] = None) -> tuple[float, int]:
    """(mean per-token KL(π || π_ref), completion tokens it averages over) of `policy` against
    `reference` on `samples` completions of each prompt sampled from the policy (`sample_groups`,
    `sampling`'s temperature and limits): `position_kl` of the tempered logits at every completion
    token, summed over all of them and divided by their number, as the stage's per-step `kl` is
    over one step's rollouts. Measured on prompts the policy was not trained on, it is the KL of the
    policy itself rather than of one step's batch (whose prompt mix moves the per-step figure).
    NaN with no completion token. Both models are Transformers on one device; their modes are kept."""
    total, count = 0.0, 0
    with torch.no_grad():
        for messages in prompts:
            group = sample_groups(policy, template, [messages], samples, sampling, generator)
            batch = pad_completions(group, pad_id)
            mask = batch["labels"] != -100
            device = next(policy.parameters()).device
            ids = batch["input_ids"].to(device)
            at = mask.to(device)
            kl = position_kl(tempered_logits(policy, ids, sampling.temperature or 1.0, at),
                             tempered_logits(reference, ids, sampling.temperature or 1.0, at), at.new_ones(int(at.sum())))
            total += float(kl.sum())
            count += int(mask.sum())
    return (total / count if count else math.nan), count


class GroupAdvantages(NamedTuple):
    advantages: torch.Tensor  # [B, G] float32; 0 where not valid and in groups without signal
    valid: torch.Tensor  # [B, G] bool: the reward is finite (a NaN reward is left out of its group)
    zero_variance: torch.Tensor  # [B] bool: the group's valid rewards are all equal (or fewer than 2)

    @property
    def zero_variance_fraction(self) -> float:
        """The fraction of groups that give no learning signal (all rewards equal)."""
        return float(self.zero_variance.float().mean()) if self.zero_variance.numel() else math.nan


def group_advantages(rewards: torch.Tensor, scale: Literal["std", "none"] = "std", eps: float = 1e-4,
                     baseline: Literal["mean", "leave_one_out"] = "mean") -> GroupAdvantages:
    """Group-relative advantages of rewards [B, G] (B prompts, G completions each).

    baseline "mean" (GRPO, Shao et al. 2024, eq. in section 4.1.2; TRL grpo_trainer.py):
    A_i = r_i - mean(r); "leave_one_out" (RLOO, Ahmadian et al. 2024; Kool et al. 2019):
    A_i = r_i - mean_{j != i}(r_j) = n / (n - 1) · (r_i - mean(r)). With scale "std", A is then
    divided by (std(r) + eps), std being the unbiased (n - 1) standard deviation of the group's
    rewards, as TRL's `rewards.view(-1, G).std(dim=1)` with its default eps 1e-4; "none" keeps the
    reward's units (Dr. GRPO, Liu et al. 2025, argue the std division biases towards groups whose
    rewards barely differ).

    NaN rewards (a failed reward source) are left out: mean, std and the leave-one-out baseline
    are over the group's n finite rewards, and the NaN completion gets advantage 0 and valid
    False (the caller drops it from the loss: `pad_completions(keep=valid)`). A group whose
    finite rewards are all equal, or that has fewer than 2 of them, gives every completion
    advantage 0 and is counted in `zero_variance`.

    Raises ValueError for a rewards tensor that is not [B, G] with G >= 2, or an unknown option.
    """
    if rewards.dim() != 2 or rewards.size(1) < 2:
        raise ValueError(f"rewards must be [prompts, group_size] with group_size >= 2 (got {tuple(rewards.shape)})")
    if scale not in ("std", "none") or baseline not in ("mean", "leave_one_out"):
        raise ValueError(f"unknown scale {scale!r} or baseline {baseline!r}")
    r = rewards.double()
    valid = ~r.isnan()
    n = valid.sum(1, keepdim=True).double()
    filled = r.masked_fill(~valid, 0.0)
    mean = filled.sum(1, keepdim=True) / n.clamp(min=1)
    centred = (filled - mean).masked_fill(~valid, 0.0)
    var = (centred ** 2).sum(1, keepdim=True) / (n - 1).clamp(min=1)
    no_signal = (n < 2) | (centred.abs().amax(1, keepdim=True) == 0)
    adv = centred * n / (n - 1).clamp(min=1) if baseline == "leave_one_out" else centred
    if scale == "std":
        adv = adv / (var.sqrt() + eps)
    adv = adv.masked_fill(~valid | no_signal, 0.0)
    return GroupAdvantages(adv.float(), valid, no_signal.squeeze(1))


class GRPOLoss(NamedTuple):
    """loss_sum: Σ over masked tokens of the per-token loss (a scalar with gradient); count: the
    masked tokens; kl_sum and clipped: Σ of the k3 KL and the number of clipped tokens over them
    (detached), summed so that micro batches and ranks add up before dividing by the count."""
    loss_sum: torch.Tensor
    count: torch.Tensor
    kl_sum: torch.Tensor
    clipped: torch.Tensor

    @property
    def kl_mean(self) -> float:
        return float(self.kl_sum / self.count) if int(self.count) else math.nan

    @property
    def clip_fraction(self) -> float:
        return float(self.clipped / self.count) if int(self.count) else math.nan


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: Optional[torch.Tensor], advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float = 0.2, kl_coef: float = 0.0) -> GRPOLoss:
    """GRPO's per-token loss, summed over the completion tokens, with their count.

    Shapes: logps, old_logps, ref_logps, mask [N, T] (log-probs of each completion token under the
    policy being trained, the policy that sampled it, the frozen reference; mask true/1 on the
    completion tokens); advantages [N], one per completion. Per token (TRL grpo_trainer.py
    `_compute_loss`; Shao et al. 2024, eq. 3):

        ratio = exp(logp - old_logp)
        loss  = -min(ratio · A, clip(ratio, 1 - clip_eps, 1 + clip_eps) · A) + kl_coef · KL
        KL    = exp(ref_logp - logp) - (ref_logp - logp) - 1

    KL is Schulman's k3 estimator of KL(π_θ || π_ref) ("Approximating KL divergence", 2020):
    unbiased, always >= 0, on the sampled tokens. With one optimizer step per batch of samples,
    old_logps is logps.detach(): the ratio is 1 and the gradient is the policy gradient
    A · ∇log π; the clip acts from the second step on the same samples. A token counts as
    clipped when the clipped term is the smaller one and its gradient is therefore zero
    (ratio < 1 - eps with A < 0, or ratio > 1 + eps with A > 0), as TRL's clip ratio.

    Normalization: token-level over the whole optimizer step, as TRL's loss_type "dapo" (DAPO,
    Yu et al. 2025) — every completion token of the step weighs the same. This function returns
    the (sum, count) of training/loop.py's LossFn contract, and the trainer divides the step's sum
    by the step's count, all-reduced over micro batches and ranks; so the loss does not depend on
    how the step is split (TRL's "bnpo" normalizes per micro batch instead, and "grpo" averages
    each completion's tokens first, which gives a short completion's tokens more weight and is
    the length bias Dr. GRPO and DAPO point out).

    Raises ValueError for mismatched shapes, clip_eps outside (0, 1), kl_coef < 0, or kl_coef > 0
    without ref_logps.
    """
    if logps.shape != old_logps.shape or logps.shape != mask.shape or logps.dim() != 2:
        raise ValueError(f"logps, old_logps and mask must be one [N, T] shape (got {tuple(logps.shape)}, "
                         f"{tuple(old_logps.shape)}, {tuple(mask.shape)})")
    if advantages.shape != logps.shape[:1]:
        raise ValueError(f"advantages must be [N] = [{logps.size(0)}] (got {tuple(advantages.shape)})")
    if not 0 < clip_eps < 1 or kl_coef < 0:
        raise ValueError(f"clip_eps must be in (0, 1) and kl_coef >= 0 (got {clip_eps}, {kl_coef})")
    if kl_coef > 0 and (ref_logps is None or ref_logps.shape != logps.shape):
        raise ValueError("kl_coef > 0 needs ref_logps of the logps' shape")
    m = mask.to(logps.dtype)
    a = advantages.to(logps.dtype).unsqueeze(1)
    ratio = torch.exp(logps - old_logps.to(logps.dtype))
    clipped_ratio = ratio.clamp(1 - clip_eps, 1 + clip_eps)
    per_token = -torch.min(ratio * a, clipped_ratio * a)
    if ref_logps is not None:
        delta = ref_logps.to(logps.dtype) - logps
        kl = torch.exp(delta) - delta - 1
        if kl_coef:
            per_token = per_token + kl_coef * kl
        kl_sum = (kl.detach() * m).sum()
    else:
        kl_sum = torch.zeros((), dtype=logps.dtype, device=logps.device)
    is_clipped = ((ratio < 1 - clip_eps) & (a < 0)) | ((ratio > 1 + clip_eps) & (a > 0))
    return GRPOLoss((per_token * m).sum(), mask.bool().sum(), kl_sum, (is_clipped & mask.bool()).sum())


class KLController:
    """The coefficient β of the KL penalty, fixed or adaptive.

    "fixed": β stays `init`. "adaptive": Ziegler et al. 2019 ("Fine-Tuning Language Models from
    Human Preferences", section 2.2), as TRL's `AdaptiveKLController` (trl/trainer/utils.py of
    TRL <= 0.11): after each optimizer step with measured KL (here the step's mean k3 KL per
    completion token, nats),

        e   = clip(KL / target - 1, -0.2, 0.2)
        β  <- β · (1 + e / horizon)

    `horizon` is in optimizer steps: Ziegler's K_β = 0.1 is horizon 10; TRL's horizon counts
    samples (its update multiplies e by the step's batch size), so TRL's horizon H with B
    completions per step is H / B here. β therefore moves at most 0.2 / horizon of itself per
    step, up when the KL is over the target and down when it is under. `state_dict` /
    `load_state_dict` carry β through checkpoints, so a resumed run continues with the β an
    uninterrupted run would have.

    Raises ValueError for an unknown mode, init < 0, or (adaptive) init == 0, a target that is
    not > 0 or a horizon that is not > 0 (β would stay 0, or the rule is undefined).
    """

    def __init__(self, init: float, mode: Literal["fixed", "adaptive"] = "fixed", target: Optional[float] = None,
                 horizon: float = 10.0):
        if mode not in ("fixed", "adaptive"):
            raise ValueError(f"kl_control must be fixed or adaptive (got {mode!r})")
        if init < 0:
            raise ValueError(f"the KL coefficient must be >= 0 (got {init})")
        if mode == "adaptive":
            if not init > 0:
                raise ValueError("an adaptive KL coefficient needs kl_coef > 0 to start from (it is multiplied each step)")
            if target is None or not target > 0:
                raise ValueError(f"an adaptive KL coefficient needs kl_target > 0 (got {target})")
            if not horizon > 0:
                raise ValueError(f"kl_horizon must be > 0 (got {horizon})")
        self.value, self.mode, self.target, self.horizon = float(init), mode, target, float(horizon)

    def update(self, kl: Optional[float]) -> float:
        """β after a step whose measured KL is `kl` (None or NaN: a step without completion tokens
        leaves β as it is); returns the new β."""
        if self.mode == "adaptive" and kl is not None and not math.isnan(kl):
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error / self.horizon
        return self.value

    def state_dict(self) -> dict[str, float]:
        return {"kl_coef": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["kl_coef"])
