"""Exact and near-duplicate detection: keys, shingles, MinHash, LSH bands, components, keepers.

Everything here works on one document, one bucket or one node's neighbourhood at a time, so
the Beam stage can run it as keyed computations over any number of documents.

Exact means exact: two documents are exact duplicates only when their texts are equal after, at
most, whitespace and case folding (`exact_key`; code keeps its case: `Foo` and `foo` are different
identifiers). The aggressive key (`dedup_key`: NFKC, punctuation
stripped, optionally digits and accents folded) only groups candidates, which `split_exact` checks
at the exact level before anything is removed: ``x = y + 1`` and ``x = y - 1`` share a candidate key
and stay two documents.

Near duplicates are compared on shingles that suit the script (`shingle_plan`): word n-grams for
scripts written with spaces, character n-grams for Han, kana, Thai, Lao, Khmer and Myanmar, chosen
per document by `llmdata.scripts.spaceless_share`.
"""
from __future__ import annotations

import hashlib
import math
import re
import string
import unicodedata
from functools import lru_cache
from typing import Iterable, Literal, Optional

import numpy as np
import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmdata.missing import is_number
from llmdata.scripts import NO_SPACE_SCRIPTS, SCRIPT_GROUPS, dominant_script, script_counts, spaceless_share, words

_PUNCT = regex.compile(r"[\p{P}\p{S}\p{Cc}]")  # one space per character; controls separate words too
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASCII_PUNCT = "".join(chr(c) for c in range(128) if _PUNCT.match(chr(c)))
_SPACES = regex.compile(r"\s+")
_DIGIT = regex.compile(r"\p{Nd}")


class KeyOptions(BaseModel):
    """How a document is reduced to the keys duplicates share.

    `lowercase` and `collapse_whitespace` set the exact level: texts equal after them are exact
    duplicates. `nfkc`, `strip_punctuation`, `map_digits` and `remove_accents` only widen the
    candidate key (and the text near-duplicate shingles are taken from); a candidate group is split
    at the exact level before a document is removed.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    lowercase: bool = Field(True, description="exact level: case folded (\"Foo\" and \"foo\" are one text)")
    lowercase_code: bool = Field(
        False, description="exact level for code (a record whose lang is \"code\", or without lang one that "
        "llmdata.langid takes for code): false keeps case, since Foo and foo are different identifiers")
    collapse_whitespace: bool = Field(True, description="exact level: runs of whitespace are one space, ends trimmed "
                                      "(code keeps its line breaks and indentation: llmdata.dedup.code_key)")
    nfkc: bool = Field(True, description="candidate only: \"x²\" and \"x2\" collide, then verification separates them")
    strip_punctuation: bool = Field(True, description="candidate only: \"x = y + 1\" and \"x = y - 1\" collide")
    map_digits: bool = Field(False, description="candidate only: every digit becomes 0: \"v1.2\" and \"v3.4\" collide")
    remove_accents: bool = Field(False, description="candidate only: \"café\" and \"cafe\" collide")


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


def exact_key(text: str, opts: KeyOptions) -> str:
    """The exact level: the text in NFC (canonically equivalent spellings are one text), case
    folded if `lowercase`, whitespace runs collapsed to one space if `collapse_whitespace`. Two
    documents are exact duplicates only when these are equal."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if opts.lowercase:
        text = text.lower()
    if opts.collapse_whitespace:
        text = " ".join(text.split())
    return text


def code_key(text: str, opts: KeyOptions) -> str:
    """The exact level for code (`is_code`): NFC, case kept unless `lowercase_code`, and the layout
    kept: line breaks and indentation stay, since in Python, YAML or a Makefile they are the program
    (`y()` inside or after an `if`); only trailing whitespace, the line-end style (CRLF, CR) and
    blank lines are folded."""
    lines = (ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    layout = "\n".join(ln for ln in lines if ln)
    return exact_key(layout, opts.model_copy(update={"lowercase": opts.lowercase and opts.lowercase_code,
                                                     "collapse_whitespace": False}))


def dedup_key(text: str, opts: KeyOptions) -> str:
    """The candidate key: the text folded by every option (NFKC, case, punctuation, digits,
    accents, whitespace). Documents sharing it are only candidates (`split_exact` decides), and its
    shingles are what near-duplicate similarity is measured on. Never shown to a model.

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
    if opts.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if opts.remove_accents:
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    if opts.lowercase:
        text = text.lower()
    if opts.strip_punctuation:
        text = punctuation_to_spaces(text)
    if opts.map_digits:
        text = _DIGIT.sub("0", text)
    if opts.collapse_whitespace:
        text = " ".join(text.split())
    return text


def punctuation_to_spaces(text: str) -> str:
    """Each punctuation, symbol or control character (\\p{P}, \\p{S}, \\p{Cc}) replaced by a space.

    The text's own non-ASCII punctuation is found one distinct character at a time. The ASCII
    ones are replaced in the UTF-8 bytes by one bytes.translate table (a byte below 0x80 is always
    a whole ASCII character in UTF-8), the few non-ASCII ones by str.replace each; a text with
    many distinct ones takes one explicit character class in the stdlib engine (3x `regex`'s
    Unicode class). `_PUNCT.sub(" ", text)` is the reference, tested equal."""
    extra = sorted(c for c in set(_NON_ASCII.findall(text)) if _PUNCT.match(c))
    if len(extra) > _FEW_EXTRA:
        return _punctuation_class("".join(extra)).sub(" ", text)
    # surrogatepass: a lone surrogate (JSON allows one) goes through as the same code point
    out = text.encode("utf-8", "surrogatepass").translate(_ASCII_PUNCT_SPACES).decode("utf-8", "surrogatepass")
    for c in extra:
        out = out.replace(c, " ")
    return out


_ASCII_PUNCT_SPACES = bytes.maketrans(_ASCII_PUNCT.encode("ascii"), b" " * len(_ASCII_PUNCT))
_FEW_EXTRA = 8  # distinct non-ASCII punctuation characters replaced one str.replace pass each


@lru_cache(maxsize=4096)
def _punctuation_class(extra: str) -> re.Pattern:
    return re.compile("[" + re.escape(_ASCII_PUNCT + extra) + "]")


def key_hash(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


def is_code(record: dict) -> bool:
    """Whether a record is code: its `lang` field (the clean stage writes "code" for code), or for a
    record without one, llmdata.langid's rule on its text (at least 30% of the sample's lines look
    like source code). A text of one or two lines is code whatever its `lang` when one of them looks
    like source (llmdata.langid.short_code): the line share needs 3 lines, so the clean stage
    labels `print(Foo)` with a natural language, and case folding merged it with `print(foo)`."""
    from llmdata.langid import is_code_text, short_code

    lang = record.get("lang")
    if lang == "code" or short_code(record["text"]):
        return True
    if lang is not None:
        return False
    return is_code_text(record["text"])


def split_exact(group: list[dict], opts: KeyOptions) -> list[list[dict]]:
    """The verification of a candidate group: its records split by `exact_key` of their text, in
    order of first appearance. Only records in the same part are exact duplicates of each other.

    Code keeps case (unless `lowercase_code`) and layout at the exact level: in a part that holds
    code (`is_code`), the records are split again by `code_key`, and the pieces without code join
    back into one (prose case and spacing variants stay duplicates of each other), so a code record
    is an exact duplicate only of records written with the same case and indentation.
    """
    parts: dict[str, list[dict]] = {}
    for rec in group:
        parts.setdefault(exact_key(rec["text"], opts), []).append(rec)
    if not opts.collapse_whitespace and (not opts.lowercase or opts.lowercase_code):
        return list(parts.values())
    out: list[list[dict]] = []
    for part in parts.values():
        codes = [is_code(r) for r in part] if len(part) > 1 else [False]
        if not any(codes):
            out.append(part)
            continue
        pieces: dict[str, list[tuple[dict, bool]]] = {}
        for rec, code in zip(part, codes):
            pieces.setdefault(code_key(rec["text"], opts), []).append((rec, code))
        prose: list[dict] = []
        for piece in pieces.values():
            if any(code for _, code in piece):
                out.append([rec for rec, _ in piece])
            else:
                prose.extend(rec for rec, _ in piece)
        if prose:
            out.append(prose)
    return out


#: Default character n-gram size per script group. Five characters of Chinese or Japanese span two
#: or three words, about what five English words are to a sentence; Thai, Lao, Khmer and Myanmar
#: write vowels and tones as separate code points, so their n-grams are longer.
DEFAULT_CHAR_SIZES = {"han": 5, "kana": 5, "thai": 8, "lao": 8, "khmer": 8, "myanmar": 8}


def shingle_strings(key: str, n: int, unit: Literal["word", "char"] = "word") -> set[str]:
    """Overlapping n-grams of the key's words (`llmdata.scripts.words`: one word per Han or kana
    character, PyThaiNLP words for Thai, \\w+ runs elsewhere) or of its characters with whitespace
    removed (for scripts without spaces). A text shorter than n units is one shingle; a text
    without any is none."""
    return set(shingle_list(key, n, unit))


def shingle_list(key: str, n: int, unit: Literal["word", "char"] = "word") -> list[str]:
    """The shingles of `shingle_strings` in text order, repeats included (a caller that hashes
    them and keeps the distinct hashes need not build the set of strings first)."""
    if unit == "char":
        chars = "".join(key.split())
        grams = [chars[i : i + n] for i in range(max(len(chars) - n + 1, 1))]
    else:
        toks = key_words(key)
        # the n-word windows toks[i:i+n] (one shingle of all the words when there are fewer than n)
        grams = list(map(" ".join, zip(*[toks[k:] for k in range(n)]))) if len(toks) > n else [" ".join(toks)]
    # "" only as the one shingle of a key without units; every other shingle has a unit in it
    return [] if grams == [""] else grams


# ASCII word characters (\w) and the ASCII characters str.split() splits on
_WORD_OR_SPACE = (string.ascii_letters + string.digits + "_" + " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f").encode("ascii")


def key_words(key: str) -> list[str]:
    """`llmdata.scripts.words` of a candidate key. A key of ASCII word characters and whitespace
    only (most keys: punctuation is already spaces) is split on whitespace, which gives the same
    \\w+ runs without a regex (tested equal)."""
    if key.isascii() and not key.encode("ascii").translate(None, _WORD_OR_SPACE):
        return key.split()
    return words(key)


def shingles(key: str, n: int, unit: Literal["word", "char"] = "word") -> set[bytes]:
    return {g.encode("utf-8") for g in shingle_strings(key, n, unit)}


def min_shingles_for(n: int, threshold: float) -> int:
    """Fewest distinct shingles a document needs for near-duplicate matching to mean anything.

    One edit inside a document of S shingles removes at most n and adds at most n, so the pair's
    Jaccard is at least (S - n) / (S + n); below S = n(1 + t)/(1 - t) a single edit can already
    fall under the threshold t, and what such short texts still match are texts whose shingles
    are all equal: ``x = y + 1`` and ``x = y - 1``, or two templated notices. They are left to the
    exact stage. For n = 5, t = 0.8 this is 45 shingles (about 49 words, or 49 Han characters).
    """
    return math.ceil(n * (1 + threshold) / (1 - threshold) - 1e-9)


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
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    key: KeyOptions = Field(
        default_factory=KeyOptions, description="how a document is reduced to its exact and candidate keys (case, "
        "spacing, NFKC, punctuation...)")
    exact: bool = Field(True, description="remove exact duplicates (equal keys after lowercase / collapse_whitespace)")
    near: bool = Field(True, description="remove near duplicates: MinHash signatures, LSH banding, then verification")
    threshold: float = Field(
        0.8, gt=0, lt=1, description="Jaccard similarity of shingle sets from which two documents are near "
        "duplicates")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations per signature (signature length)")
    bands: Optional[int] = Field(
        None, ge=1, description="LSH bands the MinHash signature is cut into; null: derived from threshold, num_perm "
        "and min_recall")
    rows: Optional[int] = Field(None, ge=1, description="MinHash values per LSH band; used only when bands is set too")
    min_recall: float = Field(
        0.97, gt=0, lt=1, description="probability that a pair right at the threshold becomes an LSH candidate; sets "
        "bands and rows")
    shingle_unit: Literal["auto", "word", "char"] = Field(
        "auto", description="auto: character n-grams for documents mostly in scripts without spaces (Han, kana, "
        "Thai, Lao, Khmer, Myanmar), word n-grams elsewhere | word | char")
    shingle_size: int = Field(5, ge=1, le=50, description="words per shingle (word n-grams)")
    char_shingle_size: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_CHAR_SIZES), description="characters per shingle (char n-grams), per "
        "script group")
    default_char_shingle_size: int = Field(
        5, ge=1, le=50, description="characters per shingle for a script group not in char_shingle_size")
    spaceless_min_share: float = Field(
        0.5, ge=0, le=1, description="shingle_unit auto: char n-grams when at least this share of letters are in "
        "scripts without spaces")
    min_shingles: Optional[int] = Field(
        None, ge=1, description="a document with fewer distinct shingles is left to exact dedup; null: n(1+t)/(1-t) "
        "(45 for 5-grams at 0.8)")
    seed: int = Field(1, description="seed of the MinHash permutations (same seed, same signatures)")
    verify: Literal["none", "signature", "exact"] = Field(
        "exact", description="check a candidate pair by exact Jaccard of shingle sets, by signature estimate, or not "
        "at all (none)")
    all_pairs_up_to: int = Field(
        32, ge=2, description="an LSH bucket of up to this many documents gives every pair; a larger one a star "
        "around its smallest id")
    max_rounds: int = Field(
        16, ge=1, description="rounds of large-star/small-star connected components (unrolled); not converging in "
        "them is an error")
    prefer: Literal["longest", "first"] = Field(
        "longest", description="which document of a duplicate group is kept: longest text, or first (smallest id)")
    prefer_field: Optional[str] = Field(
        None, description="a numeric meta or scores field: the duplicate with the highest value is kept, before "
        "`prefer`")
    line_dedup: bool = Field(
        False, description="C4-style line dedup: a line of at least line_min_chars seen in several documents stays "
        "only in the one with the smallest id")
    line_min_chars: int = Field(
        40, ge=1, description="line dedup: lines shorter than this, in characters (headings, \"Returns:\"), are "
        "never removed")

    @field_validator("char_shingle_size")
    @classmethod
    def _known_scripts(cls, sizes: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(sizes) - set(SCRIPT_GROUPS) - {"other"})
        if unknown:
            raise ValueError(f"char_shingle_size: unknown script group(s) {unknown}; known: {sorted(SCRIPT_GROUPS)} and other")
        bad = sorted(k for k, v in sizes.items() if not 1 <= v <= 50)
        if bad:
            raise ValueError(f"char_shingle_size: sizes must be 1-50 characters, not {[sizes[k] for k in bad]} for {bad}")
        return sizes

    def shingle_plan(self, key: str) -> tuple[str, int]:
        """(unit, n) for one document's candidate key: `shingle_unit` when it is word or char; with
        auto, char n-grams when at least `spaceless_min_share` of its letters are in scripts written
        without spaces (Han, kana, Thai, Lao, Khmer, Myanmar), sized for the leading such script,
        and word n-grams otherwise."""
        if self.shingle_unit == "word":
            return "word", self.shingle_size
        counts = script_counts(key)
        if self.shingle_unit == "auto" and spaceless_share(counts) < self.spaceless_min_share:
            return "word", self.shingle_size
        spaceless = {s: c for s, c in counts.items() if s in NO_SPACE_SCRIPTS}
        script = dominant_script(key, type(counts)(spaceless)) if spaceless else dominant_script(key, counts)
        return "char", self.char_shingle_size.get(script, self.default_char_shingle_size)

    def min_shingles_needed(self, n: int) -> int:
        return self.min_shingles if self.min_shingles is not None else min_shingles_for(n, self.threshold)

    def banding(self) -> tuple[int, int]:
        if self.bands and self.rows:
            if self.bands * self.rows > self.num_perm:
                raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm, self.min_recall)
