"""Reward sources for online RL, combinable with weights, that never crash a run.

    sampled completions ─► each source: one reward per completion (the trained reward model, a
      verifiable checker, a length/format penalty) ─► total = Σ_k weight_k · reward_k

A source is a callable `list[RewardInput] -> list[float]`. It is first called on the whole batch
(so the reward model scores it in batches); when that raises, it is called again one completion at
a time to find the completions it fails on. A completion a source fails on (an exception, a
non-finite reward) becomes an error row (completion index, source, one-line reason) and gets a
reward of NaN from that source, hence a NaN total: `training.rl.group_advantages` leaves NaN
completions out of their group and gives them no advantage, so the run goes on with the rest.
A source that fails on every completion of a batch is broken, not unlucky: `require_scored`
raises `RewardSourceFailed` (one line) rather than let a run train on nothing and end "complete".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import torch

from llmdata.chat import ChatTemplate, Message
from llmdata.errors import LlmpipeError
from training.reward import encode_response


class RewardInput(NamedTuple):
    """What a source sees of one completion."""
    messages: list[Message]  # the prompt's turns (before the assistant's answer)
    reference: Optional[str]  # the reference answer, when the prompt has one
    text: str  # the completion, decoded up to (not including) its end-of-turn token
    completion_ids: list[int]  # the sampled ids, with the end-of-turn token when `finished`
    finished: bool  # it ended with the end-of-turn token (else it was cut at max_new_tokens)


RewardFn = Callable[[list[RewardInput]], list[float]]


@dataclass(frozen=True)
class RewardSource:
    """A named, weighted reward function (the name keys the per-source metrics and error rows)."""
    name: str
    fn: RewardFn
    weight: float = 1.0


class RewardError(NamedTuple):
    sample: int  # index of the completion in the scored batch
    source: str
    reason: str  # one line


@dataclass
class RewardScores:
    """total: [N] float32, Σ_k weight_k · reward_k, NaN where any source failed; per_source:
    name -> [N] float32 unweighted rewards (NaN where that source failed); errors: one row per
    (completion, source) failure."""
    total: torch.Tensor
    per_source: dict[str, torch.Tensor] = field(default_factory=dict)
    errors: list[RewardError] = field(default_factory=list)

    def means(self) -> dict[str, float]:
        """Mean reward per source over the completions it scored (NaN excluded), for the metrics;
        NaN when it scored none."""
        out = {}
        for name, r in {**self.per_source, "total": self.total}.items():
            ok = r[~r.isnan()]
            out[name] = float(ok.mean()) if ok.numel() else math.nan
        return out


class RewardSourceFailed(LlmpipeError, RuntimeError):
    """A reward source failed on every completion it was given (a broken source, not a bad sample)."""


def require_scored(scores: RewardScores, where: str) -> None:
    """Raise RewardSourceFailed when some source of `scores` scored none of its completions: every
    value NaN and an error row for each. `where` names the batch in the message (e.g. "step 3")."""
    for name, rewards in scores.per_source.items():
        failed = [e for e in scores.errors if e.source == name]
        if rewards.numel() and len(failed) == rewards.numel():
            raise RewardSourceFailed(f"rl: the reward source {name!r} failed on all {rewards.numel()} completions of "
                                     f"{where}; the first: {failed[0].reason}")


def one_line(err: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, at most `limit` characters."""
    text = str(err).strip().splitlines()
    line = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _run_source(source: RewardSource, items: list[RewardInput]) -> tuple[list[float], list[RewardError]]:
    """The source's rewards for `items` ([N] floats, NaN where it failed) and its error rows."""
    def checked(values, n: int) -> list[float]:
        values = [float(v) for v in values]
        if len(values) != n:
            raise ValueError(f"returned {len(values)} rewards for {n} completions")
        return values

    try:
        rewards = checked(source.fn(items), len(items))
    except Exception:  # noqa: BLE001 - find the completion(s) it fails on, one at a time
        rewards = []
        errors = []
        for i, item in enumerate(items):
            try:
                rewards += checked(source.fn([item]), 1)
            except Exception as err:  # noqa: BLE001 - a failing sample is an error row, never a crash
                rewards.append(math.nan)
                errors.append(RewardError(i, source.name, one_line(err)))
    else:
        errors = []
    for i, r in enumerate(rewards):
        if not math.isfinite(r) and not any(e.sample == i for e in errors):
            errors.append(RewardError(i, source.name, f"non-finite reward {r}"))
            rewards[i] = math.nan
    return rewards, sorted(errors)


def score_completions(items: list[RewardInput], sources: list[RewardSource]) -> RewardScores:
    """Every source's rewards for `items`, their weighted total and the error rows.

    Raises ValueError for no sources or two sources with one name (the metrics would merge them).
    """
    if not sources:
        raise ValueError("no reward source")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"reward sources need distinct names (got {names})")
    total = torch.zeros(len(items), dtype=torch.float32)
    scores = RewardScores(total)
    for source in sources:
        rewards, errors = _run_source(source, items)
        r = torch.tensor(rewards, dtype=torch.float32)
        scores.per_source[source.name] = r
        scores.errors += errors
        scores.total = scores.total + source.weight * r  # NaN stays NaN, whatever the weight
    scores.errors.sort()
    return scores


def exact_match_reward(items: list[RewardInput]) -> list[float]:
    """The verifiable checker of the demo tasks: 1.0 when the completion, stripped, equals the
    reference answer, stripped (as training/finetune.py `exact_match` compares greedy answers),
    else 0.0. A completion cut at max_new_tokens is checked like any other (the format penalty is
    what punishes the cut). Raises ValueError when a prompt has no reference answer."""
    out = []
    for item in items:
        if item.reference is None:
            raise ValueError("the prompt has no reference answer to check against")
        out.append(1.0 if item.text.strip() == item.reference.strip() else 0.0)
    return out


@dataclass(frozen=True)
class LengthFormatPenalty:
    """A reward <= 0: -truncated for a completion that did not end with the end-of-turn token, and
    -per_token for each completion token beyond `free_tokens` (a linear length penalty, in the
    spirit of DAPO's overlong reward shaping, Yu et al. 2025)."""
    truncated: float = 1.0
    per_token: float = 0.0
    free_tokens: int = 0

    def __call__(self, items: list[RewardInput]) -> list[float]:
        return [-(0.0 if it.finished else self.truncated) - self.per_token * max(0, len(it.completion_ids) - self.free_tokens)
                for it in items]


class RewardModelScorer:
    """The trained reward model (training/reward.py) as a source: each completion is encoded with
    its prompt through the chat template exactly as `training.reward.score` does (prompt turns +
    the assistant turn with the completion's text, <|end|><|endoftext|>, the left end cut to
    min(max_len, max_seq_len) tokens), right-padded into batches of `batch_size`, and the reward
    read at each sequence's last real token (`RewardModel.forward(input_ids, lengths)`).

    The text is re-encoded rather than the sampled ids reused: the reward model was trained on the
    template's encoding of text, and a sampler can emit a non-canonical tokenization of it. The
    batches go to the device the model is on when called (the RL stage moves it to the engine's
    device after building its sources). An input longer than min(max_len, max_seq_len) is cut by
    the rule the reward model's training pairs were cut by (training/reward.py `encode_response`)
    and counted in `cut` (completions of calls that returned; the RL stage reads and resets it)."""

    def __init__(self, model, template: ChatTemplate, batch_size: int = 32, max_len: int = 4096):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.model, self.template, self.batch_size, self.max_len = model, template, batch_size, max_len
        self.pad_id = template.tok.special_ids.get("<|pad|>", template.eot_id)
        self.cut = 0

    def encode(self, item: RewardInput) -> tuple[list[int], bool]:
        return encode_response(self.template, item.messages, item.text, min(self.max_len, self.model.cfg.max_seq_len))

    @torch.no_grad()
    def __call__(self, items: list[RewardInput]) -> list[float]:
        was_training = self.model.training
        self.model.eval()
        try:
            device = next(self.model.parameters()).device
            out: list[float] = []
            cut = 0
            for start in range(0, len(items), self.batch_size):
                encoded = [self.encode(it) for it in items[start : start + self.batch_size]]
                seqs = [ids for ids, _ in encoded]
                cut += sum(was_cut for _, was_cut in encoded)
                ids = torch.full((len(seqs), max(len(s) for s in seqs)), self.pad_id, dtype=torch.long)
                for i, s in enumerate(seqs):
                    ids[i, : len(s)] = torch.tensor(s)
                lengths = torch.tensor([len(s) for s in seqs])
                out += self.model(ids.to(device), lengths.to(device)).float().tolist()
            self.cut += cut  # only a call that returns counts: a failed batch is scored again one by one
            return out
        finally:
            self.model.train(was_training)


def reward_hacking_rate(model_rewards: torch.Tensor, checker: torch.Tensor) -> tuple[float, int]:
    """How often the reward model prefers a wrong answer: over every pair of completions of the
    same prompt where the checker marks one right (1) and the other wrong (0), the fraction in
    which the reward model scores the wrong one higher (ties count half). Both are [B, G]; NaN
    entries are left out. Returns (rate, pairs); the rate is NaN when there is no such pair."""
    if model_rewards.shape != checker.shape or model_rewards.dim() != 2:
        raise ValueError(f"expected two [B, G] tensors (got {tuple(model_rewards.shape)} and {tuple(checker.shape)})")
    hacked, pairs = 0.0, 0
    for rm, ok in zip(model_rewards.tolist(), checker.tolist()):
        right = [r for r, c in zip(rm, ok) if c == 1.0 and not math.isnan(r)]
        wrong = [r for r, c in zip(rm, ok) if c == 0.0 and not math.isnan(r)]
        for a in right:
            for b in wrong:
                pairs += 1
                hacked += 1.0 if b > a else 0.5 if b == a else 0.0
    return (hacked / pairs if pairs else math.nan), pairs
