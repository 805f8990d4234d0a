"""Saving and loading a learned byte-level BPE: HF `tokenizer.json`, `vocab.json` + `merges.txt`,
and a tiktoken `Encoding` built from the same ranks (the fast encoder of the pack stage).

Ids: 0-255 are the bytes, 256.. the merges in rank order, then the special tokens. Literal
special-token text inside data is ordinary text: tiktoken's `encode_ordinary` never produces a
special id, and the HF tokenizer is loaded with `encode_special_tokens = True` for the same reason.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Optional

import numpy as np

from llmdata.errors import LlmpipeError

class TokenizerFileError(LlmpipeError, ValueError):
    """A tokenizer file that is not one (damaged, hand-edited): one line naming the file."""


#: Reserved tokens: end of text, padding, and the chat roles of the alignment stages.
DEFAULT_SPECIALS = ("<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from bytes to printable characters, the alphabet of byte-level vocab files."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _printable(token: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


class BPETokenizer:
    """A learned byte-level BPE with its pre-tokenizer pattern and reserved tokens."""

    def __init__(self, merges: list[tuple[int, int]], pattern: str, specials: tuple[str, ...] = DEFAULT_SPECIALS):
        self.merges = [tuple(m) for m in merges]
        self.pattern = pattern
        self.specials = tuple(specials)
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for i, (a, b) in enumerate(self.merges):
            self.vocab[256 + i] = self.vocab[a] + self.vocab[b]
        first_special = 256 + len(self.merges)
        self.special_ids = {tok: first_special + i for i, tok in enumerate(self.specials)}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.specials)

    @property
    def eot_id(self) -> int:
        return self.special_ids["<|endoftext|>"]

    # ------------------------------------------------------------------ encoders

    @property
    def tiktoken(self):
        """A tiktoken Encoding with the same ids (rank = id for bytes and merges)."""
        if getattr(self, "_tiktoken", None) is None:
            import tiktoken

            ranks = {tok: i for i, tok in self.vocab.items()}
            self._tiktoken = tiktoken.Encoding(
                name="llmpipe-bpe",
                pat_str=self.pattern,
                mergeable_ranks=ranks,
                special_tokens=dict(self.special_ids),
                explicit_n_vocab=self.vocab_size,
            )
        return self._tiktoken

    def encode(self, text: str) -> list[int]:
        """Ids of a text; special-token text inside it is encoded as ordinary text."""
        return self.tiktoken.encode_ordinary(text)

    def encode_arrays(self, texts: list[str], threads: int = 1) -> list[np.ndarray]:
        """Ids of each text as a uint32 array, straight from tiktoken's buffer: no Python int per
        token, which made the pack stage's encoding a third slower than the encoder itself.
        Special-token text is ordinary text here too (no token is allowed to be special)."""
        def one(text: str) -> np.ndarray:
            return self.tiktoken.encode_to_numpy(text, allowed_special=set(), disallowed_special=())

        if threads <= 1:
            return [one(t) for t in texts]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:  # tiktoken releases the GIL while it encodes
            return list(pool.map(one, texts))

    def decode(self, ids: list[int]) -> str:
        inverse = {v: k.encode("utf-8") for k, v in self.special_ids.items()}
        return b"".join(self.vocab[i] if i in self.vocab else inverse[i] for i in ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files

    def to_hf_json(self) -> dict:
        vocab = {_printable(tok): i for i, tok in self.vocab.items()}
        merges = [[_printable(self.vocab[a]), _printable(self.vocab[b])] for a, b in self.merges]
        added = [
            {"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for tok, i in self.special_ids.items()
        ]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated", "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
                ],
            },
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                "vocab": vocab,
                "merges": merges,
            },
        }

    def save(self, folder: str) -> dict[str, str]:
        """tokenizer.json (HF), vocab.json + merges.txt (GPT-2 layout), llmpipe_tokenizer.json, and
        tokenizer_config.json + special_tokens_map.json (so `AutoTokenizer` knows the reserved tokens).
        Written with json.dumps: json.dump streams through the pure-Python encoder, several times slower."""
        os.makedirs(folder, exist_ok=True)
        paths = {name: os.path.join(folder, name) for name in ("tokenizer.json", "vocab.json", "merges.txt", "llmpipe_tokenizer.json")}
        hf = self.to_hf_json()
        with open(paths["tokenizer.json"], "w", encoding="utf-8") as f:
            f.write(json.dumps(hf, ensure_ascii=False))
        with open(paths["vocab.json"], "w", encoding="utf-8") as f:
            f.write(json.dumps({**hf["model"]["vocab"], **{t: i for t, i in self.special_ids.items()}}, ensure_ascii=False))
        with open(paths["merges.txt"], "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{a} {b}\n" for a, b in hf["model"]["merges"])
        with open(paths["llmpipe_tokenizer.json"], "w", encoding="utf-8") as f:
            f.write(json.dumps({"merges": self.merges, "pattern": self.pattern, "specials": list(self.specials)}))
        paths.update(write_hf_tokenizer_config(folder, self.special_ids))
        return paths

    @classmethod
    def load(cls, folder: str) -> "BPETokenizer":
        """The tokenizer saved in `folder` (its llmpipe_tokenizer.json). Raises OSError when the
        file cannot be read, TokenizerFileError (one line naming the file) when it is not JSON of
        {"merges": [[id, id], ...] (ids of bytes or of earlier merges), "pattern": str, "specials": [str, ...]}."""
        path = os.path.join(folder, "llmpipe_tokenizer.json")
        try:
            with open(path, encoding="utf-8") as f:  # an OSError (a missing file) is raised as it is
                data = json.load(f)
            merges, pattern, specials = data["merges"], data["pattern"], data["specials"]
            if not isinstance(merges, list) or not all(
                    isinstance(m, list) and len(m) == 2 and all(type(i) is int and 0 <= i < 256 + n for i in m)
                    for n, m in enumerate(merges)):
                raise ValueError("merges must be a list of [id, id] pairs of earlier ids")
            if not isinstance(pattern, str) or not isinstance(specials, list) or not all(isinstance(t, str) for t in specials):
                raise ValueError("pattern must be a string and specials a list of strings")
        except (ValueError, TypeError, KeyError) as err:
            detail = " ".join(str(err).split())[:200]
            raise TokenizerFileError(f"{path} is not a usable tokenizer ({type(err).__name__}: {detail})") from None
        return cls([tuple(m) for m in merges], pattern, tuple(specials))


def write_hf_tokenizer_config(folder: str, special_ids: dict[str, int], eos: Optional[str] = "<|endoftext|>",
                              max_len: Optional[int] = None, chat_template: Optional[str] = None) -> dict[str, str]:
    """tokenizer_config.json and special_tokens_map.json beside a tokenizer.json, so that
    `transformers.AutoTokenizer.from_pretrained(folder)` knows the reserved tokens: `eos` as its
    end-of-sequence token (end-of-text; a chat model's end of turn), <|pad|> as padding, the rest
    as additional special tokens. No bos token is added and no eos is appended when encoding, as
    in llmpipe. A tokenizer configured without `eos` or <|pad|> among its specials gets none.
    Returns {"tokenizer_config": path, "special_tokens_map": path}."""
    eos = eos if eos in special_ids else None
    pad = "<|pad|>" if "<|pad|>" in special_ids else None
    others = [t for t in special_ids if t not in (eos, pad)]
    config: dict = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos, "pad_token": pad, "bos_token": None,
                    "unk_token": None, "clean_up_tokenization_spaces": False, "additional_special_tokens": others,
                    "add_bos_token": False, "add_eos_token": False,
                    "added_tokens_decoder": {str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                                      "normalized": False, "single_word": False}
                                             for t, i in special_ids.items()}}
    if max_len is not None:
        config["model_max_length"] = max_len
    if chat_template is not None:
        config["chat_template"] = chat_template
    paths = {"tokenizer_config": os.path.join(folder, "tokenizer_config.json"),
             "special_tokens_map": os.path.join(folder, "special_tokens_map.json")}
    with open(paths["tokenizer_config"], "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, ensure_ascii=False))
    with open(paths["special_tokens_map"], "w", encoding="utf-8") as f:
        f.write(json.dumps({"eos_token": eos, "pad_token": pad, "additional_special_tokens": others}, indent=2,
                           ensure_ascii=False))
    return paths


def load_hf(folder: str, encode_special_tokens: bool = True):
    """The saved tokenizer.json through HF `tokenizers`, with special-token text left as text."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.encode_special_tokens = encode_special_tokens
    return tok


def bytes_per_token(tokenizer: BPETokenizer, texts: list[str], limit_bytes: Optional[int] = None) -> float:
    total_bytes = total_tokens = 0
    for text in texts:
        total_bytes += len(text.encode("utf-8"))
        total_tokens += len(tokenizer.encode(text))
        if limit_bytes and total_bytes >= limit_bytes:
            break
    return total_bytes / total_tokens if total_tokens else 0.0
