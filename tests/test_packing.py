"""Token files, packing plans, the pack stage and the resumable dataset."""
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.packing import IndexedDataset, best_fit_plan, concat_plan, sample_arrays, token_dtype, write_indexed


def _docs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 60000, size=n).astype(np.int64) for n in lengths]


def test_indexed_files_round_trip_and_follow_megatron_layout(tmp_path):
    docs = _docs([5, 1, 17, 300])
    prefix = str(tmp_path / "x")
    assert write_indexed(prefix, docs, np.uint16) == 323
    data = IndexedDataset.open(prefix)
    assert len(data) == 4 and all((data.document(i) == d).all() for i, d in enumerate(docs))
    raw = open(prefix + ".idx", "rb").read()
    assert raw[:9] == b"MMIDIDX\x00\x00" and struct.unpack("<Q", raw[9:17])[0] == 1 and raw[17] == 8  # uint16
    assert struct.unpack("<QQ", raw[18:34]) == (4, 5)
    assert list(data.doc_index) == [0, 1, 2, 3, 4]
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.int32


@given(st.lists(st.integers(1, 60), min_size=1, max_size=40), st.integers(4, 32))
@settings(max_examples=150, deadline=None)
def test_best_fit_conserves_every_token_and_splits_only_what_must_be_split(lengths, seq_len):
    plan = best_fit_plan(lengths, seq_len)
    cover = [np.zeros(n, dtype=int) for n in lengths]
    for d, off, n in plan.segments:
        cover[d][off : off + n] += 1
    assert all((c == 1).all() for c in cover)
    window = seq_len + 1
    per_sample = [plan.segments[plan.sample_index[i] : plan.sample_index[i + 1], 2].sum() for i in range(plan.samples)]
    assert all(0 < s <= window for s in per_sample)
    assert plan.padding == sum(window - s for s in per_sample)
    for d, n in enumerate(lengths):
        pieces = [seg for seg in plan.segments if seg[0] == d]
        assert len(pieces) == (1 if n <= window else -(-n // window))


@given(st.lists(st.integers(1, 60), min_size=1, max_size=40), st.integers(4, 32))
@settings(max_examples=150, deadline=None)
def test_concat_windows_are_the_stream(lengths, seq_len):
    docs = _docs(lengths)
    stream = np.concatenate(docs)
    plan = concat_plan(lengths, seq_len)
    for i in range(plan.samples):
        got = np.concatenate([docs[d][off : off + n] for d, off, n in plan.segments[plan.sample_index[i] : plan.sample_index[i + 1]]])
        assert (got == stream[i * seq_len : i * seq_len + seq_len + 1]).all()
    assert plan.samples == (len(stream) - 1) // seq_len
    assert plan.dropped == len(stream) - (plan.samples * seq_len + 1 if plan.samples else 0)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=8), st.sampled_from([".bin", ".idx"]), st.data())
@settings(max_examples=60, deadline=None)
def test_a_cut_off_token_file_is_refused_at_open_or_reads_whole(tmp_path_factory, lengths, which, data):
    """A copy cut short anywhere either opens and every document reads back whole, or is refused
    with a ValueError naming the file; never a short read in the middle of training."""
    prefix = str(tmp_path_factory.mktemp("cut") / "x")
    docs = _docs(lengths)
    write_indexed(prefix, docs, np.uint16)
    size = Path(prefix + which).stat().st_size
    os.truncate(prefix + which, data.draw(st.integers(0, size), label="kept bytes"))
    try:
        opened = IndexedDataset.open(prefix)
    except ValueError as err:
        assert prefix in str(err)
        return
    assert len(opened) == len(docs) and all((opened.document(i) == d).all() for i, d in enumerate(docs))


def test_a_plan_that_does_not_fit_its_token_file_is_refused(tmp_path):
    prefix = str(tmp_path / "p")
    write_indexed(prefix, _docs([10, 4]), np.uint16)
    data = IndexedDataset.open(prefix)
    best_fit_plan([10, 4], seq_len=16).check(data, "ok")
    with pytest.raises(ValueError, match="names document 2"):
        best_fit_plan([10, 4, 3], seq_len=16).check(data, "more documents")
    with pytest.raises(ValueError, match="reads past the end of a document"):
        best_fit_plan([10, 5], seq_len=16).check(data, "longer documents")
    damaged = best_fit_plan([10, 4], seq_len=16)
    damaged.sample_index = damaged.sample_index[:-1]
    with pytest.raises(ValueError, match="sample index is damaged"):
        damaged.check(data, "damaged")


def test_sample_arrays_positions_labels_and_documents(tmp_path):
    docs = [np.array([1, 2, 3]), np.array([4, 5])]
    prefix = str(tmp_path / "s")
    write_indexed(prefix, docs, np.uint16)
    plan = best_fit_plan([3, 2], seq_len=7)  # one window of 8: 3 + 2 + 3 padding
    s = sample_arrays(IndexedDataset.open(prefix), plan, 0, pad_id=0)
    assert s["input_ids"].tolist() == [1, 2, 3, 4, 5, 0, 0]
    assert s["labels"].tolist() == [2, 3, -100, 5, -100, -100, -100]  # 3 cannot see the document that 4 starts
    assert s["position_ids"].tolist() == [0, 1, 2, 0, 1, 0, 0]
    assert s["doc_ids"].tolist() == [0, 0, 0, 1, 1, -1, -1]


def test_pack_stage_accounts_and_conserves_tokens(packed, clean_run):
    out, tok_dir = packed
    from llmdata.tokenizer_io import BPETokenizer

    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert c["input"] == c["train"] + c["val"] + c["quarantined"]["total"] + c["dropped"]["total"]
    assert c["input"] == json.loads((clean_run / "manifest.json").read_text())["counts"]["kept"]
    tok = BPETokenizer.load(str(tok_dir))
    from tests.conftest import read_jsonl_gz

    texts = {r["id"]: r["text"] for r in read_jsonl_gz(clean_run / "kept")}
    expected = sum(len(tok.encode(t)) + 1 for t in texts.values())
    summary = m["summary"]
    assert summary["train"]["tokens"] + summary["val"]["tokens"] == expected
    assert (out / "train-00000.bin").stat().st_size == 2 * IndexedDataset.open(str(out / "train-00000")).sizes.sum()


def test_dataset_resume_equals_an_uninterrupted_pass(packed):
    from training.data import PackedDataset, ResumableSampler

    out, _ = packed
    ds = PackedDataset(str(out), "train")
    assert len(ds) > 10
    item = ds[0]
    assert item["input_ids"].shape == (128,) and item["labels"].shape == (128,)
    sampler = ResumableSampler(len(ds), seed=3)
    it = iter(sampler)
    full = [next(it) for _ in range(len(ds) + 7)]  # crosses an epoch boundary
    first = ResumableSampler(len(ds), seed=3)
    it1 = iter(first)
    head = [next(it1) for _ in range(5)]
    state = first.state_dict()
    resumed = ResumableSampler(len(ds), seed=3)
    resumed.load_state_dict(state)
    it2 = iter(resumed)
    tail = [next(it2) for _ in range(len(full) - 5)]
    assert head + tail == full
    assert sorted(full[: len(ds)]) == list(range(len(ds)))
    for i in (full[0], full[-1]):
        a, b = ds[i], ds[i]
        assert all((a[k] == b[k]).all() for k in a)


@given(st.integers(1, 50), st.integers(0, 3), st.integers(0, 120))
def test_first_draws_are_the_indices_a_fresh_sampler_yields(size, seed, n):
    """What DPO computes reference log-probs for: exactly the pairs the run's first n draws read."""
    from training.data import ResumableSampler

    sampler = ResumableSampler(size, seed=seed)
    it = iter(ResumableSampler(size, seed=seed))
    assert sampler.first_draws(n) == {next(it) for _ in range(n)}
