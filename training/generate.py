"""Text in, text out: a trained model continues a prompt, or answers it through the chat template.

`llmpipe generate` and the stage reports' samples go through here, so what a report shows is what
a user gets from the same folder. Decoding is the model's own `generate` (KV cache; greedy at
temperature 0, else top-k / top-p sampling), stopping at end-of-text, or at the end of the
assistant's turn for a chat; or beam search (`Sampling.num_beams` > 1, `beam_search`), the same
hypotheses transformers' beam search finds on the exported model (tested token for token).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F

from llmdata.chat import ChatTemplate, Message
from training.model import Transformer, reorder_cache
from training.options import MAX_BEAMS


#: beam search divides float32 scores (down to the -1e9 that rules a candidate out) by length **
#: length_penalty: keeping that factor within e**+-64 keeps every quotient finite in float32
_MAX_LOG_NORM = 64.0


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 is greedy
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    num_beams: int = 1  # > 1: beam search (deterministic; temperature must be 0)
    length_penalty: float = 1.0  # beam search: a finished hypothesis scores sum log p / generated length ** this
    early_stopping: Union[bool, Literal["never"]] = False  # beam search: transformers' meaning (see beam_search)

    def __post_init__(self) -> None:
        """Raises ValueError (one line) for settings that cannot decode: see each message."""
        if not 1 <= self.num_beams <= MAX_BEAMS:
            raise ValueError(f"num_beams must be from 1 to {MAX_BEAMS} (got {self.num_beams})")
        if self.num_beams > 1 and self.temperature > 0:
            raise ValueError("beam search is deterministic: use temperature 0 with num_beams > 1 (beam sampling is not implemented)")
        if not math.isfinite(self.length_penalty):
            raise ValueError(f"length_penalty must be a finite number (got {self.length_penalty})")
        if self.num_beams > 1 and abs(self.length_penalty) * math.log(self.max_new_tokens) > _MAX_LOG_NORM:
            raise ValueError(f"length_penalty {self.length_penalty} with max_new_tokens {self.max_new_tokens}: "
                             f"|length_penalty| must be at most {_MAX_LOG_NORM / math.log(self.max_new_tokens):.2f}, "
                             "so that length ** length_penalty stays a float32 number")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be true, false or never (got {self.early_stopping!r})")


#: what transformers adds to a score to rule a candidate out (kept, not -inf, so the sums round as theirs do)
_RULED_OUT = -1.0e9


@torch.no_grad()
def beam_search(model: Transformer, prompt: list[int], num_beams: int, max_new_tokens: int, eos_ids: list[int],
                length_penalty: float = 1.0, early_stopping: Union[bool, str] = False) -> tuple[list[int], float]:
    """The best hypothesis of a beam search after `prompt` (token ids) and its score.

    Returns (generated ids, ending with its eos id when it stopped at one; the length-normalized
    score sum(log p) / len(generated) ** length_penalty). A port of transformers' `_beam_search`
    (transformers 5, generation/utils.py: `_get_top_k_continuations`,
    `_get_running_beams_for_next_iteration`, `_update_finished_beams`, `_check_early_stop_heuristic`,
    `_beam_search_has_unfinished_sequences`) for one prompt, with the same float32 arithmetic so the
    same hypotheses win:

    - K = `num_beams` running beams, (K,) accumulated log-probabilities; at first only beam 0 is
      live (the others start at -1e9). Each step scores all K x vocab continuations and keeps the
      top max(2, 1 + len(eos_ids)) * K, so at least K of them do not end.
    - A candidate among the first K that ends (an eos id, or the max_new_tokens-th token) competes
      for the K finished slots with score / generated_length ** length_penalty; the best K
      candidates that do not end run on (their KV cache rows reordered, `reorder_cache`).
    - Stop when every candidate ends, or when no running beam can beat the worst finished one:
      `early_stopping=True` stops as soon as K hypotheses are finished; False estimates the best
      running score at the current length (transformers' heuristic); "never" at max_new_tokens
      when length_penalty > 0 (the canonical beam search with length_penalty 0).

    Raises ValueError when num_beams < 1, max_new_tokens < 1, the prompt leaves no room in
    `model.cfg.max_seq_len` for a new token, or a negative length_penalty scales the scores below
    the -1e9 that rules candidates out (where transformers returns a placeholder hypothesis). The prompt is not cut here (see `_answers_after`).
    """
    if num_beams < 1 or max_new_tokens < 1:
        raise ValueError(f"beam search needs num_beams >= 1 and max_new_tokens >= 1 (got {num_beams}, {max_new_tokens})")
    max_new_tokens = min(max_new_tokens, model.cfg.max_seq_len - len(prompt))
    if max_new_tokens < 1 or not prompt:
        raise ValueError(f"a prompt of {len(prompt)} tokens leaves no room to generate (max_seq_len {model.cfg.max_seq_len})")
    model.eval()
    device = next(model.parameters()).device
    k, keep = num_beams, max(2, 1 + len(eos_ids)) * num_beams
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    cache: list[dict] = [dict() for _ in model.blocks]
    logits = model(torch.tensor([prompt], device=device), cache=cache)["logits"][:, -1]
    reorder_cache(cache, torch.zeros(k, dtype=torch.long, device=device))  # K copies of the prompt's cache
    logits = logits.expand(k, -1)
    running = torch.empty(k, 0, dtype=torch.long, device=device)  # (K, generated) ids of the running beams
    running_scores = torch.full((k,), _RULED_OUT, device=device)
    running_scores[0] = 0.0
    finished = torch.empty(k, 0, dtype=torch.long, device=device)  # (K, generated) finished slots, best first
    finished_len = torch.zeros(k, dtype=torch.long, device=device)  # tokens each finished slot holds
    finished_scores = torch.full((k,), _RULED_OUT, device=device)
    finished_real = torch.zeros(k, dtype=torch.bool, device=device)  # a slot holds a finished hypothesis
    for step in range(max_new_tokens):
        if step:
            logits = model(running[:, -1:], cache=cache, start=len(prompt) + step - 1)["logits"][:, -1]
        vocab = logits.size(-1)
        total = (F.log_softmax(logits.float(), dim=-1) + running_scores[:, None]).reshape(-1)  # (K * vocab,)
        top_scores, top_index = torch.topk(total, keep)  # (keep,), best first
        source = top_index // vocab
        candidates = torch.cat([running[source], (top_index % vocab)[:, None]], dim=1)  # (keep, step + 1)
        ends = torch.isin(candidates[:, -1], eos) | (step + 1 >= max_new_tokens)
        # the best K candidates that do not end run on
        live_scores = top_scores + ends.float() * _RULED_OUT
        nxt = torch.topk(live_scores, k).indices
        running, running_scores = candidates[nxt], live_scores[nxt]
        reorder_cache(cache, source[nxt])
        # the first K candidates that end compete for the finished slots
        just_finished = ends & (torch.arange(keep, device=device) < k)
        # (transformers also rules out every candidate of a prompt whose search is over, by
        # early_stopping=True or its heuristic; with one prompt this loop has stopped by then)
        scores = top_scores / ((step + 1) ** length_penalty)
        scores += (~just_finished).float() * _RULED_OUT
        merged_scores = torch.cat([finished_scores, scores])
        pick = torch.topk(merged_scores, k).indices
        width = step + 1
        merged = torch.cat([F.pad(finished, (0, width - finished.size(1)), value=-1), candidates])
        finished, finished_scores = merged[pick], merged_scores[pick]
        finished_len = torch.cat([finished_len, torch.full((keep,), width, device=device)])[pick]
        finished_real = torch.cat([finished_real, just_finished])[pick]
        # could a running beam still beat the worst finished slot?
        hypothetical = max_new_tokens if early_stopping == "never" and length_penalty > 0.0 else step + 1
        best_running = running_scores[0] / (hypothetical ** length_penalty)
        worst_finished = torch.where(finished_real, finished_scores.min(), torch.tensor(_RULED_OUT, device=device))
        improvable = bool((best_running > worst_finished).any())
        if not improvable or (bool(finished_real.all()) and early_stopping is True) or bool(ends.all()):
            break
    if not bool(finished_real[0]):  # a placeholder slot won: scaled scores went below the -1e9 of ruled-out ones
        raise ValueError(f"length_penalty {length_penalty} scales the beams' scores past {_RULED_OUT:g}, the score "
                         "that rules a candidate out, so no real hypothesis can win: use a length_penalty closer to 0")
    return [int(t) for t in finished[0, : int(finished_len[0])]], float(finished_scores[0])


def _answers_after(model: Transformer, tokenizer, ids: list[int], stop_ids: list[int], sampling: Sampling,
                   generator: Optional[torch.Generator], copies: int = 1) -> list[str]:
    """Generate `copies` continuations of `ids` (one batch; keeping the prompt's end when it leaves
    no room) and decode each up to its first stop token, any of `stop_ids` (the ids the HF export
    lists as eos, where transformers' generate stops). Sampling and greedy generate until
    `stop_ids[0]` (so a seeded generator draws the same tokens whatever the other stops); beam
    search (one hypothesis) ends hypotheses at any of `stop_ids` (which candidates it keeps depends
    on how many there are)."""
    stop_id = stop_ids[0]
    room = max(model.cfg.max_seq_len - sampling.max_new_tokens, 1)
    ids = ids[-room:] or [stop_id]
    if sampling.num_beams > 1:
        best, _ = beam_search(model, ids, sampling.num_beams, sampling.max_new_tokens, stop_ids,
                              sampling.length_penalty, sampling.early_stopping)
        news = [best] * copies
    else:
        device = next(model.parameters()).device  # the generator, when given, must be on it too
        seq = model.generate(torch.tensor([ids] * copies, device=device), sampling.max_new_tokens,
                             temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                             eos_id=stop_id, generator=generator)
        news = [[int(t) for t in row[len(ids):]] for row in seq]
    return [tokenizer.decode(new[: next((i for i, t in enumerate(new) if t in stop_ids), len(new))]) for new in news]


def inference_device(name: str) -> torch.device:
    """The device `llmpipe generate --device` names: "auto" is the first CUDA GPU when torch sees
    one, else the CPU; "cpu", "cuda" or "cuda:N" as given. Raises ValueError (one line) for a name
    torch does not know or a CUDA device it cannot see."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name!r} is not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r}: generate runs on the CPU or a CUDA GPU")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f"--device {name!r}: torch sees {count} CUDA device(s)"
                             + ("" if count else " (a CPU build of torch, or no GPU); use --device cpu"))
    return device


def continuation(model: Transformer, tokenizer, prompt: str, sampling: Sampling,
                 generator: Optional[torch.Generator] = None) -> str:
    """What a (pretrained) model writes after `prompt`, up to end-of-text."""
    return _answers_after(model, tokenizer, tokenizer.encode(prompt), [tokenizer.eot_id], sampling, generator)[0]


def chat_reply(model: Transformer, template: ChatTemplate, prompt: Union[str, list[Message]], sampling: Sampling,
               generator: Optional[torch.Generator] = None) -> str:
    """The assistant's answer to a conversation (a string is one user turn), up to the end of its turn."""
    return chat_replies(model, template, prompt, sampling, 1, generator)[0]


#: held-out prompts answered in one call of the model at most by `greedy_chat_replies`
GREEDY_BATCH = 64


def by_length(ids: list[list[int]], chunk: Optional[int] = None) -> list[list[int]]:
    """The indices of `ids` grouped by length, the lengths in the order they first appear, each
    group cut into pieces of at most `chunk` (None: whole): the batches the model's `generate`
    (which has no left padding) can take together. Used by `greedy_chat_replies` and RL's
    training/rl.py `sample_groups`."""
    groups: dict[int, list[int]] = {}
    for i, row in enumerate(ids):
        groups.setdefault(len(row), []).append(i)
    size = chunk or max(len(ids), 1)
    return [members[k:k + size] for members in groups.values() for k in range(0, len(members), size)]


def greedy_chat_replies(model: Transformer, template: ChatTemplate, prompts: list[list[Message]],
                        max_new_tokens: int) -> list[str]:
    """`chat_reply(model, template, p, Sampling(max_new_tokens))` for each conversation of
    `prompts`, in their order, with the prompts of one length in tokens answered together (at most
    `GREEDY_BATCH` in one call of the model's KV-cache `generate`; it has no left padding, so other
    lengths go in other calls): held-out exact match asks hundreds of greedy answers, and a model
    that has not learned to stop (a pretrained model's "before") runs every one to max_new_tokens.
    Each row's greedy tokens are its own (a row is never read by another); the batched forward pass
    may round the last bits differently from a single row's, which can turn a tie the other way: of
    the demo's 2,000 held-out answers (five models, 16 and 32 tokens) none, and of the LoRA stage's
    unmerged adapter model one, "What is 8 + 6?", whose first-token logits for "15" and "14" are equal
    to six decimals (`python bench/exact_match_batched.py`); a tie has no right answer to keep, so the
    batch's is kept rather than re-asked alone. Each answer is cut at its first <|end|> or
    <|endoftext|>, as `chat_reply`'s."""
    stops = [template.end_id, template.eot_id]
    room = max(model.cfg.max_seq_len - max_new_tokens, 1)
    ids = [template.prompt(messages)[-room:] or [stops[0]] for messages in prompts]
    device = next(model.parameters()).device
    replies: list[str] = [""] * len(prompts)
    for chunk in by_length(ids, GREEDY_BATCH):
        width = len(ids[chunk[0]])
        seq = model.generate(torch.tensor([ids[i] for i in chunk], device=device), max_new_tokens, eos_id=stops[0])
        for i, row in zip(chunk, seq[:, width:].tolist()):
            end = next((k for k, t in enumerate(row) if t in stops), len(row))
            replies[i] = template.tok.decode(row[:end]).strip()
    return replies


def chat_replies(model: Transformer, template: ChatTemplate, prompt: Union[str, list[Message]], sampling: Sampling,
                 n: int, generator: Optional[torch.Generator] = None) -> list[str]:
    """`n` answers to one conversation, sampled as one batch of n rows (the same `n` answers for
    the same generator state); each up to the end of its turn, stripped."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    stops = [template.end_id, template.eot_id]  # as the HF export's eos_token_id (hf_export.stop_ids)
    return [a.strip() for a in _answers_after(model, template.tok, template.prompt(messages), stops, sampling, generator, n)]
