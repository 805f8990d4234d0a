"""Best-of-N: sample N answers to a prompt and let the reward model choose among them.

The cheapest use of a trained reward model (rejection sampling at inference time, as in
Nakano et al. 2021, "WebGPT", and Stiennon et al. 2020): no policy update, N times the sampling
cost. Two ways to choose (`Selection`):

- "max": the answer the reward model scores highest (best-of-N proper);
- "vote": reward-weighted majority voting: identical answers pool their weights
  exp(reward / vote_temperature) and the answer with the largest total wins. It is self-consistency
  (Wang et al. 2023, majority voting over samples) with each vote weighted by the verifier, as in
  Li et al. 2023 ("Making Language Models Better Reasoners with Step-Aware Verifier", DIVERSE) and
  Uesato et al. 2022. How often the policy samples an answer then counts beside its score, so one
  overrated wrong sample does not beat the answer most samples agree on; vote_temperature -> 0 is
  "max", -> infinity plain majority voting.

`llmpipe generate --best-of N --reward-model DIR [--select vote]` and the RL stage's report go
through `best_of_n`.
"""
from __future__ import annotations

import json
import math
import os
from typing import Literal, NamedTuple, Optional, Union

import torch

from llmdata.chat import ChatTemplate, Message
from training.generate import Sampling, chat_replies
from training.model import Transformer
from training.options import MAX_BEST_OF
from training.reward import RewardModel, load_reward_model, score
from training.stage import TrainingInputError


Selection = Literal["max", "vote"]


class BestOfN(NamedTuple):
    best: str  # the chosen answer
    scored: list[tuple[str, float]]  # (answer, reward) of every sample, in the order drawn
    cut: list[bool]  # per sample: its prompt + answer were shortened to fit the reward model


def select(scored: list[tuple[str, float]], selection: Selection = "max", vote_temperature: float = 2.0) -> str:
    """The chosen answer among `scored` [(answer, reward)] (rewards in the reward model's units).

    "max": the highest reward, the first of equal maxima. "vote": answers equal after stripping
    whitespace at the ends pool exp((reward - max reward) / vote_temperature); the largest total
    wins, ties to the answer drawn first. Raises ValueError for an empty list, an unknown selection
    or vote_temperature <= 0."""
    if not scored:
        raise ValueError("nothing to choose from: no scored answers")
    if selection == "max":
        return scored[max(range(len(scored)), key=lambda i: scored[i][1])][0]
    if selection != "vote":
        raise ValueError(f"selection must be max or vote (got {selection!r})")
    if not vote_temperature > 0:
        raise ValueError(f"vote_temperature must be > 0 (got {vote_temperature})")
    top = max(r for _, r in scored)
    totals: dict[str, float] = {}
    first: dict[str, str] = {}
    for answer, reward in scored:
        key = answer.strip()
        totals[key] = totals.get(key, 0.0) + math.exp((reward - top) / vote_temperature)
        first.setdefault(key, answer)
    return first[max(totals, key=totals.get)]  # dicts keep insertion order: ties go to the first drawn


def best_of_n(model: Transformer, reward_model: RewardModel, template: ChatTemplate, prompt: Union[str, list[Message]],
              n: int, sampling: Sampling, generator: Optional[torch.Generator] = None, selection: Selection = "max",
              vote_temperature: float = 2.0) -> BestOfN:
    """The chosen answer (`select`), [(answer, reward)] for all `n` samples in the order drawn, and
    for each whether the reward model scored it on a shortened input (`BestOfN`).

    The `n` answers are sampled in one batch with `sampling` (`chat_replies`) and each scored by
    `reward.score` on the conversation prompt + answer, through `template` (the policy's and the
    reward model's chat template: they must share a tokenizer), cut as the reward model's
    training pairs were when they do not fit it. Ties go to the earliest sample.
    Deterministic for a seeded `generator`. Raises ValueError when n is not from 1 to MAX_BEST_OF, when n > 1 at
    temperature 0 (greedy decoding gives n identical answers), with beam search, or when the
    two models' vocabularies differ in size; TrainingInputError when a reward is NaN or infinite.
    """
    if not 1 <= n <= MAX_BEST_OF:
        raise ValueError(f"best-of-N samples N from 1 to {MAX_BEST_OF} answers in one batch (got {n})")
    if n > 1 and sampling.temperature <= 0:
        raise ValueError("best-of-N samples: give a temperature > 0 (greedy decoding gives N identical answers)")
    if sampling.num_beams > 1:
        raise ValueError("best-of-N samples its answers; it does not combine with beam search")
    if reward_model.cfg.vocab_size != model.cfg.vocab_size:
        raise ValueError(f"the reward model's vocabulary ({reward_model.cfg.vocab_size} tokens) is not the policy's "
                         f"({model.cfg.vocab_size}): it scores another tokenizer's ids")
    answers = chat_replies(model, template, prompt, sampling, n, generator)
    results = [score(reward_model, template, prompt, a) for a in answers]
    scored = [(a, r) for a, (r, _) in zip(answers, results)]
    bad = next((r for _, r in scored if not math.isfinite(r)), None)
    if bad is not None:  # NaN compares false: max / vote would quietly pick the first sample
        raise TrainingInputError(f"the reward model gave a non-finite reward ({bad}) to a best-of-{n} answer: "
                                 "its weights are broken (a diverged reward run?)")
    return BestOfN(select(scored, selection, vote_temperature), scored, [cut for _, cut in results])


def load_matching_reward_model(folder: str, tokenizer) -> RewardModel:
    """The reward model in `folder` (a reward stage's final/), checked to share `tokenizer` (the
    policy's: the same merges, pre-tokenizer pattern and reserved tokens). Raises
    TrainingInputError (one line) for a missing folder or file, a folder that holds no reward
    head, an unreadable tokenizer or weights that do not fit the config, or another tokenizer."""
    from llmdata.tokenizer_io import BPETokenizer, TokenizerFileError

    if not os.path.isdir(folder):
        raise TrainingInputError(f"reward model not found: {folder} is not a folder (give a reward stage's final/)")
    for name, what in (("model.safetensors", "weights"), ("model_config.json", "config"), ("llmpipe_tokenizer.json", "tokenizer")):
        if not os.path.exists(os.path.join(folder, name)):
            raise TrainingInputError(f"reward model not found: {folder} has no {name} ({what}); "
                                     "give a reward stage's final/ folder")
    try:
        with open(os.path.join(folder, "model_config.json"), encoding="utf-8") as f:
            is_reward = bool(json.load(f).get("reward_head"))
    except (OSError, ValueError, AttributeError) as err:
        raise TrainingInputError(f"{folder}/model_config.json is not readable ({type(err).__name__}: {err})") from None
    if not is_reward:
        raise TrainingInputError(f"{folder} is a language model, not a reward model (no reward head)")
    try:
        theirs = BPETokenizer.load(folder)
    except TokenizerFileError as err:
        raise TrainingInputError(str(err)) from None
    if (theirs.merges, theirs.pattern, theirs.specials) != (tokenizer.merges, tokenizer.pattern, tokenizer.specials):
        raise TrainingInputError(f"the reward model in {folder} has another tokenizer than the policy "
                                 f"({theirs.vocab_size} vs {tokenizer.vocab_size} tokens, or other merges): "
                                 "train it from the policy's base model")
    return load_reward_model(folder)
