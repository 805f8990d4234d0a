"""Exact and near-duplicate detection: keys, shingles, MinHash, LSH bands, components, keepers.

Everything here works on one document, one bucket or one node's neighbourhood at a time, so
the Beam stage can run it as keyed computations over any number of documents.
"""
from __future__ import annotations

import hashlib
import math
import string
import unicodedata
from functools import lru_cache
from typing import Iterable, Literal, Optional

import numpy as np
import regex
from pydantic import BaseModel, ConfigDict, Field

from llmdata.missing import is_number

_PUNCT = regex.compile(r"[\p{P}\p{S}\p{Cc}]")  # one space per character; controls separate words too
_SPACES = regex.compile(r"\s+")
_DIGIT = regex.compile(r"\p{Nd}")
_WORD = regex.compile(r"\w+")


class KeyOptions(BaseModel):
    """How a document is reduced to the key that duplicates share."""

    model_config = ConfigDict(extra="forbid")
    lowercase: bool = True
    collapse_whitespace: bool = True
    strip_punctuation: bool = True
    map_digits: bool = False  # every digit becomes 0: "v1.2" and "v3.4" collide
    remove_accents: bool = False  # "café" and "cafe" collide


def _ascii_table(opts: KeyOptions) -> bytes:
    table = bytearray(range(256))
    if opts.lowercase:
        for c in range(ord("A"), ord("Z") + 1):
            table[c] = c + 32
    if opts.strip_punctuation:
        for c in list(range(0, 32)) + [127] + [ord(ch) for ch in string.punctuation]:
            table[c] = ord(" ")
    if opts.map_digits:
        for c in range(ord("0"), ord("9") + 1):
            table[c] = ord("0")
    return bytes(table)


_TABLES: dict[tuple, bytes] = {}


def dedup_key(text: str, opts: KeyOptions) -> str:
    """The text as duplicates are compared: normalized by the options, never shown to a model.

    ASCII text (most of it) goes through one bytes.translate table; `dedup_key_unicode` is the
    general path and gives the same key for ASCII text (tested).
    """
    if not text.isascii():
        return dedup_key_unicode(text, opts)
    sig = (opts.lowercase, opts.strip_punctuation, opts.map_digits)
    table = _TABLES.get(sig)
    if table is None:
        table = _TABLES[sig] = _ascii_table(opts)
    out = text.encode("ascii").translate(table).decode("ascii")
    if opts.collapse_whitespace:
        out = " ".join(out.split())
    return out


def dedup_key_unicode(text: str, opts: KeyOptions) -> str:
    if opts.remove_accents:
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    if opts.lowercase:
        text = text.lower()
    if opts.strip_punctuation:
        text = _PUNCT.sub(" ", text)
    if opts.map_digits:
        text = _DIGIT.sub("0", text)
    if opts.collapse_whitespace:
        text = " ".join(text.split())
    return text


def key_hash(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


def shingle_strings(key: str, n: int, unit: Literal["word", "char"] = "word") -> set[str]:
    """Overlapping n-grams of words (or characters) of the key; a short text is one shingle."""
    if unit == "char":
        grams = {key[i : i + n] for i in range(max(len(key) - n + 1, 1))}
    else:
        toks = _WORD.findall(key)
        grams = {" ".join(toks[i : i + n]) for i in range(max(len(toks) - n + 1, 1))}
    grams.discard("")
    return grams


def shingles(key: str, n: int, unit: Literal["word", "char"] = "word") -> set[bytes]:
    return {g.encode("utf-8") for g in shingle_strings(key, n, unit)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def candidate_probability(j: float, bands: int, rows: int) -> float:
    """The LSH S-curve: probability that two documents of Jaccard j share at least one band."""
    return 1.0 - (1.0 - j**rows) ** bands


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, min_recall: float = 0.97) -> tuple[int, int]:
    """Bands and rows (bands * rows <= num_perm) for LSH followed by verification.

    A pair at the threshold must become a candidate with probability >= `min_recall`; among the
    settings that achieve it, the one with the fewest expected candidates below the threshold
    (the area under the S-curve from 0 to the threshold) wins, since each costs a verification.
    datasketch's criterion (weighted false positive + false negative areas) centres the curve on
    the threshold instead, which misses about a third of the pairs right at it.
    """
    from scipy.integrate import quad

    feasible = []
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= min_recall:
            load, _ = quad(lambda j: candidate_probability(j, bands, rows), 0.0, threshold)
            feasible.append((load, -rows, bands, rows))
    if not feasible:  # even one row per band is not enough: take the most sensitive setting
        return num_perm, 1
    _, _, bands, rows = min(feasible)
    return bands, rows


def minhash_signatures(shingle_sets: list[set[bytes]], num_perm: int, seed: int = 1) -> list[np.ndarray]:
    """MinHash signatures of many documents at once with datasketch's batched constructor."""
    from datasketch import MinHash

    if not shingle_sets:
        return []
    hashes = MinHash.bulk([list(s) for s in shingle_sets], num_perm=num_perm, seed=seed)
    return [np.asarray(h.hashvalues, dtype=np.uint64) for h in hashes]


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[str]:
    """One key per band: the band's index and a digest of its rows' hash values."""
    out = []
    for b in range(bands):
        chunk = signature[b * rows : (b + 1) * rows].astype(np.uint64).tobytes()
        out.append(f"{b}:{hashlib.blake2b(chunk, digest_size=12).hexdigest()}")
    return out


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def bucket_edges(members: list[str], all_pairs_up_to: int) -> list[tuple[str, str]]:
    """Candidate pairs of one LSH bucket: every pair in a small bucket; in a large one, each
    member paired with the smallest id (a star), so a bucket of n costs n - 1 pairs, not n²/2."""
    members = sorted(set(members))
    if len(members) < 2:
        return []
    if len(members) <= all_pairs_up_to:
        return [(a, b) for i, a in enumerate(members) for b in members[i + 1 :]]
    root = members[0]
    return [(root, m) for m in members[1:]]


def large_star(node: str, neighbours: Iterable[str]) -> list[tuple[str, str]]:
    """Large-star step (Kiveris et al. 2014): link every larger neighbour to the smallest node
    of the neighbourhood (the node itself included)."""
    nbrs = set(neighbours)
    smallest = min(nbrs | {node})
    return [(v, smallest) for v in nbrs if v > node]


def small_star(node: str, smaller_neighbours: Iterable[str]) -> list[tuple[str, str]]:
    """Small-star step: link the node and its smaller neighbours to the smallest of them."""
    nbrs = set(smaller_neighbours)
    smallest = min(nbrs | {node})
    return [(v, smallest) for v in nbrs | {node} if v != smallest]


def preference_key(record: dict, prefer: str, prefer_field: Optional[str] = None) -> tuple:
    """Which document of a cluster is kept: the smallest key wins, ties go to a stable hash of the id.

    `prefer_field` names a numeric field of `meta` or `scores` (a quality classifier's score, say)
    where higher is better; then `prefer` decides: `longest` text, or `first` (smallest id).
    """
    tie = hashlib.blake2b(record["id"].encode("utf-8"), digest_size=8).hexdigest()
    primary = 0.0
    if prefer_field:
        value = (record.get("scores") or {}).get(prefer_field, (record.get("meta") or {}).get(prefer_field))
        primary = -float(value) if is_number(value) else math.inf
    secondary = -len(record["text"]) if prefer == "longest" else 0
    return (primary, secondary, record["id"] if prefer == "first" else "", tie)


def line_hash(line: str) -> str:
    """The identity of a line for line-level dedup: its text with spacing and case ignored."""
    key = _SPACES.sub(" ", line).strip().lower()
    return hashlib.blake2b(key.encode("utf-8"), digest_size=12).hexdigest()


class DedupOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: KeyOptions = Field(default_factory=KeyOptions)
    exact: bool = True
    near: bool = True
    threshold: float = Field(0.8, gt=0, lt=1)  # target Jaccard similarity
    num_perm: int = Field(128, ge=16, le=1024)
    bands: Optional[int] = Field(None, ge=1)  # None: derived from threshold and num_perm
    rows: Optional[int] = Field(None, ge=1)
    min_recall: float = Field(0.97, gt=0, lt=1)  # P(candidate) for a pair right at the threshold
    shingle_unit: Literal["word", "char"] = "word"
    shingle_size: int = Field(5, ge=1, le=50)
    seed: int = 1
    verify: Literal["none", "signature", "exact"] = "exact"
    all_pairs_up_to: int = Field(32, ge=2)  # bucket size above which candidates form a star
    max_rounds: int = Field(16, ge=1)  # large+small star rounds, unrolled; unconverged is an error
    prefer: Literal["longest", "first"] = "longest"
    prefer_field: Optional[str] = None  # numeric meta/scores field, higher kept first
    line_dedup: bool = False
    line_min_chars: int = Field(40, ge=1)  # shorter lines (headings, "Returns:") are never removed

    def banding(self) -> tuple[int, int]:
        if self.bands and self.rows:
            if self.bands * self.rows > self.num_perm:
                raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm, self.min_recall)
