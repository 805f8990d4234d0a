"""Text in, text out: a trained model continues a prompt, or answers it through the chat template.

`llmpipe generate` and the stage reports' samples go through here, so what a report shows is what
a user gets from the same folder. Decoding is the model's own `generate` (KV cache; greedy at
temperature 0, else top-k / top-p sampling), stopping at end-of-text, or at the end of the
assistant's turn for a chat.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from llmdata.chat import ChatTemplate, Message
from training.model import Transformer


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 is greedy
    top_k: Optional[int] = None
    top_p: Optional[float] = None


def _decode_after(model: Transformer, tokenizer, ids: list[int], stop_id: int, sampling: Sampling,
                  generator: Optional[torch.Generator]) -> str:
    """Generate after `ids` (keeping the prompt's end when it leaves no room) and decode the new
    tokens up to the stop token."""
    room = max(model.cfg.max_seq_len - sampling.max_new_tokens, 1)
    ids = ids[-room:] or [stop_id]
    seq = model.generate(torch.tensor([ids]), sampling.max_new_tokens, temperature=sampling.temperature,
                         top_k=sampling.top_k, top_p=sampling.top_p, eos_id=stop_id, generator=generator)
    new = [int(t) for t in seq[0, len(ids):]]
    return tokenizer.decode(new[: new.index(stop_id)] if stop_id in new else new)


def continuation(model: Transformer, tokenizer, prompt: str, sampling: Sampling,
                 generator: Optional[torch.Generator] = None) -> str:
    """What a (pretrained) model writes after `prompt`, up to end-of-text."""
    return _decode_after(model, tokenizer, tokenizer.encode(prompt), tokenizer.eot_id, sampling, generator)


def chat_reply(model: Transformer, template: ChatTemplate, prompt: Union[str, list[Message]], sampling: Sampling,
               generator: Optional[torch.Generator] = None) -> str:
    """The assistant's answer to a conversation (a string is one user turn), up to the end of its turn."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return _decode_after(model, template.tok, template.prompt(messages), template.end_id, sampling, generator).strip()
