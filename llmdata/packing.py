"""Token files and packing plans.

Documents are stored in Megatron's indexed format (`.bin` token ids, `.idx` with one sequence per
document and the document boundaries), readable with `numpy.memmap` and by Megatron itself. A
packing plan says which pieces of which documents fill each training sample:

- `concat`: the token stream cut into windows of seq_len + 1 (consecutive windows share one
  token, as inputs and shifted labels), no padding; the tail shorter than a window is dropped.
- `best_fit`: documents longer than a window are split into window-sized pieces, then pieces go
  into windows by best-fit decreasing (each into the fullest window it still fits); the rest of
  each window is padding. No document that fits in a window is split.

A plan is two arrays: `segments` (rows of document index, offset, length) and `sample_index`
(sample i owns segments[sample_index[i]:sample_index[i + 1]]).
"""
from __future__ import annotations

import bisect
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class PackOptions(BaseModel):
    """How the pack stage turns documents into training sequences (the `pack:` config section)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    seq_len: int = Field(
        2048, ge=8, le=1_048_576, description="tokens per training sequence (a window holds seq_len + 1: inputs and "
        "shifted targets)")
    strategy: Literal["concat", "best_fit"] = Field(
        "best_fit", description="best_fit: whole documents packed best-fit decreasing, cut only when too long | "
        "concat: one token stream cut every seq_len")
    val_fraction: float = Field(
        0.02, ge=0, lt=0.5, description="share of documents (0-0.5) in the validation split, chosen by a hash of the "
        "id")
    encode_threads: int = Field(
        1, ge=1, le=64, description="tokenizer threads per worker when encoding a batch of documents")


_HEADER = b"MMIDIDX\x00\x00"
_DTYPE_CODES = {np.dtype(np.uint8): 1, np.dtype(np.int8): 2, np.dtype(np.int16): 3, np.dtype(np.int32): 4,
                np.dtype(np.int64): 5, np.dtype(np.float64): 6, np.dtype(np.float32): 7, np.dtype(np.uint16): 8}
_CODE_DTYPES = {v: k for k, v in _DTYPE_CODES.items()}


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else int32 (Megatron's index format has no uint32 code)."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.int32)


def write_indexed(prefix: str, documents: Iterable[np.ndarray], dtype: np.dtype) -> int:
    """Write `prefix.bin` and `prefix.idx` (Megatron MMapIndexedDataset, version 1); returns tokens."""
    sizes: list[int] = []
    pointers: list[int] = []
    offset = 0
    itemsize = np.dtype(dtype).itemsize
    with open(prefix + ".bin", "wb") as f:
        for doc in documents:
            arr = np.asarray(doc, dtype=dtype)
            f.write(arr.tobytes(order="C"))
            sizes.append(arr.size)
            pointers.append(offset)
            offset += arr.size * itemsize
    with open(prefix + ".idx", "wb") as f:
        f.write(_HEADER)
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", _DTYPE_CODES[np.dtype(dtype)]))
        f.write(struct.pack("<Q", len(sizes)))
        f.write(struct.pack("<Q", len(sizes) + 1))
        f.write(np.asarray(sizes, dtype=np.int32).tobytes(order="C"))
        f.write(np.asarray(pointers, dtype=np.int64).tobytes(order="C"))
        f.write(np.arange(len(sizes) + 1, dtype=np.int64).tobytes(order="C"))
    return int(sum(sizes))


@dataclass
class IndexedDataset:
    """A memory-mapped view of `prefix.bin` / `prefix.idx`."""

    tokens: np.ndarray
    sizes: np.ndarray
    pointers: np.ndarray  # in tokens, not bytes
    doc_index: np.ndarray

    @classmethod
    def open(cls, prefix: str) -> "IndexedDataset":
        """Map the two files, refusing (ValueError) an index or token file too short for what the
        index says it holds: a copy cut off in transfer fails here, not mid-training."""
        with open(prefix + ".idx", "rb") as f:
            header = f.read(34)
        if len(header) < 34 or header[:9] != _HEADER:
            raise ValueError(f"{prefix}.idx is not a Megatron index file")
        (version,) = struct.unpack("<Q", header[9:17])
        if version != 1:
            raise ValueError(f"{prefix}.idx: unsupported version {version}")
        code, n_seq, n_doc = struct.unpack("<BQQ", header[17:34])
        if code not in _CODE_DTYPES:
            raise ValueError(f"{prefix}.idx: unknown token type code {code}")
        dtype = _CODE_DTYPES[code]
        needed = n_seq * 12 + n_doc * 8
        if os.path.getsize(prefix + ".idx") - 34 < needed:
            raise ValueError(f"{prefix}.idx is truncated: {n_seq:,} documents need {needed + 34:,} bytes")
        idx = np.memmap(prefix + ".idx", mode="r", dtype=np.uint8, offset=34)
        sizes = np.frombuffer(idx, dtype=np.int32, count=n_seq)
        pointers = np.frombuffer(idx, dtype=np.int64, count=n_seq, offset=n_seq * 4)
        doc_index = np.frombuffer(idx, dtype=np.int64, count=n_doc, offset=n_seq * 12)
        end = int((pointers + sizes.astype(np.int64) * dtype.itemsize).max()) if n_seq else 0
        have = os.path.getsize(prefix + ".bin")
        if have < end:
            raise ValueError(f"{prefix}.bin is truncated: {have:,} bytes, its index needs {end:,}")
        # an empty .bin (no documents, or only empty ones) cannot be memory-mapped
        tokens = np.memmap(prefix + ".bin", mode="r", dtype=dtype) if have else np.zeros(0, dtype=dtype)
        return cls(tokens, sizes, pointers // dtype.itemsize, doc_index)

    def __len__(self) -> int:
        return len(self.sizes)

    def document(self, i: int) -> np.ndarray:
        start = int(self.pointers[i])
        return self.tokens[start : start + int(self.sizes[i])]


@dataclass
class PackPlan:
    segments: np.ndarray  # int64 [n, 3]: document, offset, length
    sample_index: np.ndarray  # int64 [samples + 1]
    window: int  # seq_len + 1 tokens per sample
    padding: int  # tokens of padding in all samples
    dropped: int  # tokens left out (concat's tail)
    split_docs: int  # documents cut into more than one piece

    @property
    def samples(self) -> int:
        return len(self.sample_index) - 1

    def save(self, path: str) -> None:
        np.savez(path, segments=self.segments, sample_index=self.sample_index,
                 meta=np.array([self.window, self.padding, self.dropped, self.split_docs], dtype=np.int64))

    def check(self, data: IndexedDataset, name: str) -> None:
        """Refuse (ValueError) a plan that does not fit its token file, such as a plan left from
        another pack run: every piece inside its document, every sample inside its window."""
        index, seg = self.sample_index, self.segments
        if len(index) == 0 or index[0] != 0 or index[-1] != len(seg) or np.any(np.diff(index) < 0):
            raise ValueError(f"{name}: the plan's sample index is damaged")
        if not len(seg):
            return
        docs, offsets, lengths = seg[:, 0], seg[:, 1], seg[:, 2]
        if docs.min() < 0 or docs.max() >= len(data):
            raise ValueError(f"{name}: the plan names document {int(docs.max())}, the token file holds {len(data):,}")
        if offsets.min() < 0 or lengths.min() < 0 or np.any(offsets + lengths > data.sizes[docs]):
            raise ValueError(f"{name}: the plan reads past the end of a document (was it made from other token files?)")
        filled = np.concatenate([[0], np.cumsum(lengths)])
        if np.any(filled[index[1:]] - filled[index[:-1]] > self.window):
            raise ValueError(f"{name}: a sample of the plan holds more than its {self.window} tokens")

    @classmethod
    def load(cls, path: str) -> "PackPlan":
        try:
            with np.load(path) as z:
                window, padding, dropped, split = (int(x) for x in z["meta"])
                return cls(z["segments"], z["sample_index"], window, padding, dropped, split)
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path} is not a packing plan ({type(err).__name__})") from None


def concat_plan(lengths: list[int], seq_len: int) -> PackPlan:
    """Windows of seq_len + 1 over the concatenated documents, starting every seq_len tokens."""
    window = seq_len + 1
    total = int(sum(lengths))
    n = (total - 1) // seq_len if total > seq_len else 0
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    segments: list[tuple[int, int, int]] = []
    index = [0]
    split_docs: set[int] = set()
    doc = 0
    for s in range(n):
        lo, hi = s * seq_len, s * seq_len + window
        while starts[doc + 1] <= lo:
            doc += 1
        d = doc
        while lo < hi:
            take_from = lo - starts[d]
            take = min(hi, starts[d + 1]) - lo
            if take > 0:
                segments.append((d, int(take_from), int(take)))
                if take < lengths[d]:
                    split_docs.add(d)
            lo += take
            d += 1
        index.append(len(segments))
    used_end = (n - 1) * seq_len + window if n else 0
    return PackPlan(np.asarray(segments, dtype=np.int64).reshape(-1, 3), np.asarray(index, dtype=np.int64),
                    window, 0, total - used_end, len(split_docs))


def best_fit_plan(lengths: list[int], seq_len: int) -> PackPlan:
    """Best-fit decreasing over document pieces; pieces are cut only from documents too long to fit."""
    window = seq_len + 1
    pieces: list[tuple[int, int, int]] = []  # length, doc, offset
    split = 0
    for d, n in enumerate(lengths):
        if n > window:
            split += 1
        for off in range(0, n, window):
            pieces.append((min(window, n - off), d, off))
    pieces.sort(key=lambda p: (-p[0], p[1], p[2]))
    bins: list[list[tuple[int, int, int]]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin id), sorted
    for length, d, off in pieces:
        i = bisect.bisect_left(free, (length, -1))
        if i < len(free):
            remaining, b = free.pop(i)
        else:
            remaining, b = window, len(bins)
            bins.append([])
        bins[b].append((d, off, length))
        remaining -= length
        if remaining > 0:
            bisect.insort(free, (remaining, b))
    segments = [seg for b in bins for seg in b]
    index = np.concatenate([[0], np.cumsum([len(b) for b in bins])]).astype(np.int64)
    padding = sum(window - sum(s[2] for s in b) for b in bins)
    return PackPlan(np.asarray(segments, dtype=np.int64).reshape(-1, 3), index, window, int(padding), 0, split)


def sample_arrays(data: IndexedDataset, plan: PackPlan, i: int, pad_id: int) -> dict[str, np.ndarray]:
    """One training sample: inputs, labels, positions restarting at each document piece, and the
    piece number of each position (for a block-diagonal mask). Labels are -100 on padding and on
    the last position of each piece followed by another: under the document mask it cannot see
    the next piece, so its first token would be an impossible target (as HF's
    DataCollatorWithFlattening and torchtitan mask it)."""
    tokens = np.full(plan.window, pad_id, dtype=np.int64)
    positions = np.zeros(plan.window, dtype=np.int64)
    doc_ids = np.full(plan.window, -1, dtype=np.int64)
    at = 0
    for k, (d, off, length) in enumerate(plan.segments[plan.sample_index[i] : plan.sample_index[i + 1]]):
        tokens[at : at + length] = data.document(int(d))[off : off + length]
        positions[at : at + length] = np.arange(length)
        doc_ids[at : at + length] = k
        at += length
    labels = tokens[1:].copy()
    labels[(doc_ids[1:] < 0) | (doc_ids[1:] != doc_ids[:-1])] = -100
    return {"input_ids": tokens[:-1], "labels": labels, "position_ids": positions[:-1], "doc_ids": doc_ids[:-1]}
