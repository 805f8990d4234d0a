"""Byte-level BPE: pre-tokenization, an incremental merge learner, and a reference encoder.

The 256 bytes are the base vocabulary (id = byte value), so any UTF-8 text encodes with no
unknown token and decodes back exactly. Merges get ids 256, 257, ... in the order they were
learned, which is also their rank: a tiktoken `Encoding` built from these ranks and the HF
`tokenizer.json` written by tokenizer_io give the same ids as `encode_reference` (tested).
"""
from __future__ import annotations

import gc
import heapq
import re
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Optional

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmdata.tokenizer_io import DEFAULT_SPECIALS

def _ranges(*spans: tuple[int, int]) -> str:
    """A character-class body of literal code points (`a-b`): every regex engine that runs these
    patterns (Python `regex`, tiktoken's fancy-regex, HF's Oniguruma) reads literal characters the
    same way (Python's `regex` rejects `\\x{4E00}` escapes), and a range does not depend on the
    Unicode version of an engine's script tables, as `\\p{Han}` would."""
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in spans)


#: Scripts written without spaces between words, by code point: Han (CJK ideographs and their
#: extensions, compatibility ideographs, the iteration marks), Hiragana, Katakana (with the
#: half-width forms and the prolonged sound mark), and Thai letters and their combining marks.
HAN = _ranges((0x3005, 0x3007), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3FFFF))
HIRAGANA = _ranges((0x3041, 0x309F))
KATAKANA = _ranges((0x30A1, 0x30FA), (0x30FC, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))
THAI_BASE = _ranges((0x0E01, 0x0E30), (0x0E32, 0x0E33), (0x0E40, 0x0E46))
THAI_MARK = _ranges((0x0E31, 0x0E31), (0x0E34, 0x0E3A), (0x0E47, 0x0E4E))
#: Longest piece of a run of those scripts: 6 characters (a Thai letter with its marks counts as
#: one). Chosen on a Chinese+English mix (docs/tokenizer.md, bench/tokenizer_multilingual.py).
CJK_PIECE = 6


def multilingual_pattern(piece: int = CJK_PIECE) -> str:
    """llmpipe's pre-tokenizer for every language: cl100k's (GPT-4) with three changes.
    - Runs of Han, of Hiragana, of Katakana and of Thai are pre-tokens of their own (not glued to
      Latin letters; DeepSeek's pre-tokenizer isolates CJK runs the same way), cut into pieces of
      at most `piece` characters (0: whole runs, for comparison), each piece taking one leading
      space or punctuation mark as cl100k's words do. A long clause is never one pre-token.
    - Combining marks belong to words (`\\p{M}`, as in o200k's letters), so Devanagari vowel
      signs, Arabic harakat or a decomposed accent do not cut a word apart.
    - Other words: any run of letters and marks outside those scripts (Latin, Cyrillic, Greek,
      Arabic, Hangul, ...), written as a negated class so that no engine needs class subtraction.
    Returns the regex source (literal code points for the script ranges, see `_ranges`).
    """
    n = f"{{1,{piece}}}" if piece else "+"
    lead = r"[^\r\n\p{L}\p{N}]?"
    word = rf"[^\s\p{{N}}\p{{P}}\p{{S}}\p{{C}}\p{{Z}}{HAN}{HIRAGANA}{KATAKANA}{THAI_BASE}{THAI_MARK}]"
    return "|".join([
        r"'(?i:[sdmt]|ll|ve|re)",
        rf"{lead}{word}+",  # before the script runs: it cannot match where they do, and is tried most
        rf"{lead}[{HAN}]{n}",
        rf"{lead}[{HIRAGANA}]{n}",
        rf"{lead}[{KATAKANA}]{n}",
        rf"{lead}(?:[{THAI_BASE}][{THAI_MARK}]*){n}",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]++[\r\n]*",
        r"\s*[\r\n]",
        r"\s+(?!\S)",
        r"\s+",
    ])


#: Pre-tokenizer regexes. gpt2: GPT-2's; gpt4: cl100k's (digits in groups of up to 3);
#: multilingual: cl100k's with runs of Han, kana and Thai cut into short pieces (`multilingual_pattern`).
PATTERNS = {
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""",
    "multilingual": multilingual_pattern(),
}
#: The tokenizer stage's default.
DEFAULT_PATTERN = "multilingual"


class PretokenCounter:
    """Pre-token counts of many texts. For the built-in patterns, texts are first cut before each
    space that follows a non-space character, each distinct piece is pre-tokenized once, and its
    pre-tokens counted as often as the piece occurs: most pieces are words seen many times, and
    cutting (stdlib `re`) costs less than the pattern does. The cut changes no pre-token: no
    alternative of these patterns matches a non-space character followed by a space, they tile the
    text, and they look neither behind nor past a non-space character, so a match boundary falls
    at every such cut. A pattern of the user's own is run on whole texts. (`re` counts a few
    more characters as space than `regex` does; that only removes cuts.)
    """

    _CUT = re.compile(r"(?<=\S)(?= )")

    def __init__(self, pattern: str):
        self.regex = regex.compile(pattern)
        self.by_piece = pattern in PATTERNS.values()
        self.counts: Counter = Counter()

    def add(self, text: str) -> None:
        self.counts.update(self._CUT.split(text) if self.by_piece else self.regex.findall(text))

    def __len__(self) -> int:
        return len(self.counts)

    def take(self) -> Counter:
        """The pre-token counts so far, and a fresh start."""
        counts, self.counts = self.counts, Counter()
        if not self.by_piece:
            return counts
        tokens: Counter = Counter()
        for piece, n in counts.items():
            for token in self.regex.findall(piece):
                tokens[token] += n
        return tokens


def pretokenize(text: str, pattern: regex.Pattern) -> list[bytes]:
    """The pre-tokens of a text as UTF-8 bytes; merges never cross their boundaries."""
    return [m.encode("utf-8") for m in pattern.findall(text)]


def merge_pair(seq: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """The sequence with every non-overlapping occurrence of `pair`, left to right, replaced."""
    a, b = pair
    out: list[int] = []
    i = 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


@dataclass
class MergeResult:
    merges: list[tuple[int, int]]  # (left id, right id) in rank order; merge i creates id 256 + i
    vocab: dict[int, bytes]  # id -> bytes, for the 256 bytes and every merge
    stats: dict = field(default_factory=dict)


@contextmanager
def _cyclic_gc_paused():
    """Pause Python's cyclic garbage collector, restoring its state after. The learner allocates
    millions of small tuples and lists and frees them by reference counting alone (it makes no
    cycles); the collector's passes over them cost a third of its CPU time (5.8 s -> 3.6 s on a
    3.6 MB Chinese+English table)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def learn_merges(counts: dict[bytes, int], vocab_size: int, min_frequency: int = 2) -> MergeResult:
    """Learn up to vocab_size - 256 merges from a pre-token count table: bytes -> count.

    `min_frequency`: a pair seen fewer times (summed over the table) is never merged, HF
    `tokenizers`' BpeTrainer meaning (bpe/trainer.rs); every pre-token of the table takes part,
    including those seen once. Returns the merges in rank order and the vocabulary.
    See `_learn_merges` for the method."""
    with _cyclic_gc_paused():
        return _learn_merges(counts, vocab_size, min_frequency)


def _learn_merges(counts: dict[bytes, int], vocab_size: int, min_frequency: int) -> MergeResult:
    """Learn up to vocab_size - 256 merges from a pre-token count table.

    Incremental: pair counts are kept in a dict and a heap; a merge only revisits the words that
    contain its pair (found through a pair -> words index), adjusting the counts of the pairs it
    destroys and creates around each occurrence (not every pair of the word: 1.1 s -> 0.74 s on a
    45 MB corpus's table). Heap entries are checked against the live count when popped (lazy
    deletion), so only a pair whose count grew is pushed again. Ties go to the pair whose merged bytes are smallest, then to the smaller ids, so
    the result does not depend on dict or table order.
    """
    words: list[list[int]] = []
    freqs: list[int] = []
    for token, n in counts.items():
        if n > 0 and token:
            words.append(list(token))
            freqs.append(n)
    vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
    pair_counts: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += f
            where[pair].add(wi)

    def key(pair: tuple[int, int]) -> tuple:
        return (-pair_counts[pair], vocab[pair[0]] + vocab[pair[1]], pair)

    heap = [key(p) for p in pair_counts]
    heapq.heapify(heap)
    merges: list[tuple[int, int]] = []
    target = max(vocab_size - 256, 0)
    while len(merges) < target and heap:
        neg, merged_bytes, pair = heapq.heappop(heap)
        live = pair_counts.get(pair, 0)
        if live != -neg:  # stale entry: the count changed since it was pushed
            if live > 0:
                heapq.heappush(heap, key(pair))
            continue
        if live < min_frequency:
            break
        new_id = 256 + len(merges)
        merges.append(pair)
        vocab[new_id] = merged_bytes
        delta: dict[tuple[int, int], int] = defaultdict(int)  # net change of each touched pair's count
        a, b = pair
        for wi in where.pop(pair, ()):
            w, f = words[wi], freqs[wi]
            n = len(w)
            out: list[int] = []
            i = 0
            while i < n:
                if w[i] == a and i + 1 < n and w[i + 1] == b:
                    # only the pairs around this occurrence change; a left neighbour that was
                    # itself just merged cancels the pair its merge added
                    if out:
                        left = out[-1]
                        delta[(left, a)] -= f
                        delta[(left, new_id)] += f
                        where[(left, new_id)].add(wi)
                    delta[pair] -= f
                    if i + 2 < n:
                        right = w[i + 2]
                        delta[(b, right)] -= f
                        delta[(new_id, right)] += f
                        where[(new_id, right)].add(wi)
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            if len(out) < n:
                words[wi] = out
        pair_counts.pop(pair, None)
        for p, change in delta.items():
            if p == pair or change == 0:
                continue
            count = pair_counts[p] + change
            if count <= 0:
                pair_counts.pop(p, None)
                continue
            pair_counts[p] = count
            if change > 0:  # a fall needs no push: the older, larger entry pops first and is re-keyed
                heapq.heappush(heap, key(p))
    return MergeResult(merges, vocab, {"words": len(words), "merges": len(merges)})


def learn_merges_naive(counts: dict[bytes, int], vocab_size: int, min_frequency: int = 2) -> list[tuple[int, int]]:
    """Recount every pair after every merge: the slow, obviously right reference for tests."""
    words = {tuple(t): n for t, n in counts.items() if n > 0 and t}
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []
    while len(merges) < vocab_size - 256:
        pc: Counter = Counter()
        for w, n in words.items():
            for p in zip(w, w[1:]):
                pc[p] += n
        if not pc:
            break
        best = min(pc, key=lambda p: (-pc[p], vocab[p[0]] + vocab[p[1]], p))
        if pc[best] < min_frequency:
            break
        new_id = 256 + len(merges)
        merges.append(best)
        vocab[new_id] = vocab[best[0]] + vocab[best[1]]
        new_words: dict = {}
        for w, n in words.items():
            out = tuple(merge_pair(list(w), best, new_id))
            new_words[out] = new_words.get(out, 0) + n
        words = new_words
    return merges


def encode_reference(text: str, merges: list[tuple[int, int]], pattern: regex.Pattern) -> list[int]:
    """Pure-Python encoder: in each pre-token, repeatedly merge the adjacent pair of lowest rank."""
    ranks = {pair: i for i, pair in enumerate(merges)}
    ids: list[int] = []
    for piece in pretokenize(text, pattern):
        seq = list(piece)
        while len(seq) > 1:
            best: Optional[tuple[int, int]] = None
            best_rank = None
            for p in zip(seq, seq[1:]):
                r = ranks.get(p)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = p, r
            if best is None:
                break
            seq = merge_pair(seq, best, 256 + best_rank)
        ids.extend(seq)
    return ids


def decode(ids: Iterable[int], vocab: dict[int, bytes]) -> str:
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


class TokenizerOptions(BaseModel):
    """How the tokenizer stage trains (the `tokenizer:` config section)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    vocab_size: int = Field(
        8192, ge=300, le=1_000_000, description="tokens in the vocabulary: 256 bytes + merges + special tokens")
    pattern: str = Field(
        DEFAULT_PATTERN, description="pre-tokenization regex: multilingual | gpt4 | gpt2 | a regex of your own")
    min_frequency: int = Field(2, ge=1, description="a pair seen fewer times is never merged (HF BpeTrainer's meaning)")
    max_pretokens: int = Field(
        2_000_000, ge=100, description="distinct pre-tokens the merge step may hold; past it the rarest are pruned")
    heldout_fraction: float = Field(
        0.02, ge=0, lt=0.5, description="share of documents (0-0.5, by a hash of the id) held out of training to "
        "measure compression")
    heldout_bytes: int = Field(20_000_000, ge=1000, description="held-out text measured for bytes per token, in bytes")
    specials: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SPECIALS), description="special tokens added to the vocabulary (end of "
        "text, padding, the chat template's)")
    flush_every: int = Field(
        200_000, ge=1000, description="distinct pre-tokens (words, mostly) counted per bundle before a flush (memory "
        "bound)")

    def regex_pattern(self) -> str:
        return PATTERNS.get(self.pattern, self.pattern)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            regex.compile(PATTERNS.get(value, value))
        except regex.error as err:
            raise ValueError(f"not a valid regex ({err})") from None
        return value
