"""The joins of the dedup pipeline. It decides on ids and joins the records back only at the
write (`WriteShards`): that join must give every input record exactly one outcome, the first
record of each id its decision, and the repeats of an id to the quarantine, for any layout of ids,
texts and shards. Verification (`verify_edges`) joins each document's shingle set by id and meets
the two halves of a candidate pair per pair: it must accept exactly the pairs a direct comparison
accepts, with the same similarity."""
import gzip
import json
import random
import tempfile
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmdata.dedup import DedupOptions, KeyOptions, estimated_jaccard, exact_key, preference_key
from pipelines.cli import main
from pipelines.dedup import WriteShards, exact_jaccard, verify_edges
from pipelines.runner import beam_pipeline
from tests.conftest import read_jsonl_gz

SENTENCES = [
    "the quick brown fox jumps over the lazy dog near the river bank",
    "a café in the old town serves naïve visitors strong coffee at dawn",
    "日本語の文章もここに一つだけ入っています",
    "every record must come out exactly once whatever its id says",
]
VARIANTS = [lambda t: t, str.upper, lambda t: t.replace(" ", "  ")]  # equal at the exact level

record = st.tuples(st.sampled_from("abcdefg"), st.integers(0, len(SENTENCES) - 1), st.integers(0, len(VARIANTS) - 1))
layout = st.lists(st.lists(record, min_size=0, max_size=7), min_size=1, max_size=3)


def expected(files: list[list[dict]]) -> tuple[dict, dict, list]:
    """The stage's outcome by a slow path: the first record of each id by (file, line); the
    others quarantined; exact groups by `exact_key`, the `preference_key` minimum kept."""
    first, repeats = {}, []
    for name, records in files:
        for line, rec in enumerate(records, start=1):
            if rec["id"] in first:
                repeats.append((name, line))
            else:
                first[rec["id"]] = rec
    groups: dict[str, list[dict]] = {}
    for rec in first.values():
        groups.setdefault(exact_key(rec["text"], KeyOptions()), []).append(rec)
    kept, removed = {}, {}
    for group in groups.values():
        keeper = min(group, key=lambda r: preference_key(r, "longest"))["id"]
        cluster = keeper if len(group) > 1 else None
        for rec in group:
            outcome = (rec["text"], cluster, None if rec["id"] == keeper else keeper)
            (kept if rec["id"] == keeper else removed)[rec["id"]] = outcome
    return kept, removed, sorted(repeats)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layout, num_shards=st.integers(1, 4))
def test_every_record_once_for_any_id_layout(layout, num_shards):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = []
        for k, rows in enumerate(layout):
            records = [{"id": i, "text": VARIANTS[v](SENTENCES[s])} for i, s, v in rows]
            with gzip.open(tmp / f"in-{k}.jsonl.gz", "wt", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            files.append((f"in-{k}.jsonl.gz", records))
        out = tmp / "out"
        assert main(["dedup", "--input", str(tmp / "in-*.jsonl.gz"), "--output", str(out), "--set", "dedup.near=false",
                     "--set", f"dedup.num_shards={num_shards}"]) == 0
        kept = read_jsonl_gz(out / "kept")
        removed = read_jsonl_gz(out / "removed")
        quarantine = read_jsonl_gz(out / "quarantine")
        want_kept, want_removed, want_repeats = expected(files)
        assert sorted(r["id"] for r in kept) == sorted(want_kept)  # no id twice, none lost
        assert sorted(r["id"] for r in removed) == sorted(want_removed)
        for r in kept + removed:
            text, cluster, dup_of = (want_kept | want_removed)[r["id"]]
            assert (r["text"], r.get("cluster"), r.get("duplicate_of")) == (text, cluster, dup_of)
        assert all(q["reason"] == "duplicate_id" for q in quarantine)
        assert sorted((q["source"], q["line"]) for q in quarantine) == want_repeats
        for path in (out / "kept").glob("*.gz"):  # each record in the shard its id hashes to, sorted
            assert path.name.endswith(f"-of-{num_shards:05d}.jsonl.gz")
        counts = json.loads((out / "manifest.json").read_text())["counts"]
        assert counts["input"] == sum(len(r) for _, r in files) == len(kept) + len(removed) + len(quarantine)


def test_write_refuses_a_record_without_decision_and_a_decision_without_record(tmp_path):
    rec = {"id": "a", "text": "x", "origin": {"file": "f", "line": 1}}
    write = WriteShards(str(tmp_path), 1, None)
    for docs, decisions in (([rec], []), ([], [("a", (False, {}))]), ([rec], [("a", (False, {})), ("a", (True, {}))])):
        with pytest.raises(RuntimeError, match="do not match one to one"):
            list(write.process((0, docs), {0: decisions}, {0: []}))
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("verify", ["exact", "signature", "none"])
def test_verification_accepts_what_a_direct_comparison_accepts(verify):
    rng = random.Random(3)
    base = np.arange(200, dtype=np.uint32)
    data = {}
    for k in range(24):  # sets from near copies of one base to unrelated ones; signatures alike
        keep = np.array([rng.random() < 0.6 + 0.4 * (k % 4) / 3 for _ in base])
        extra = np.array(sorted(rng.sample(range(1000, 1100), k % 5)), dtype=np.uint32)
        sig = np.array([rng.randrange(3) if rng.random() < 0.5 else 0 for _ in range(32)], dtype=np.uint64)
        data[f"d{k:02d}"] = {"set": np.union1d(base[keep], extra), "sig": sig, "pref": (0.0, 0, "", "")}
    ids = sorted(data)
    edges = sorted({tuple(sorted(rng.sample(ids, 2))) for _ in range(60)})
    opts = DedupOptions(verify=verify, threshold=0.7)

    def direct(a, b):
        sim = exact_jaccard(data[a]["set"], data[b]["set"]) if verify == "exact" else estimated_jaccard(data[a]["sig"], data[b]["sig"])
        return (a, b, sim) if verify == "none" or sim >= opts.threshold else None

    want = [e for e in (direct(a, b) for a, b in edges) if e]
    assert 0 < len(want) < len(edges) or verify == "none"
    with beam_pipeline(["--runner=DirectRunner"]) as p:
        accepted = verify_edges(p | "Edges" >> beam.Create(edges), p | "Data" >> beam.Create(sorted(data.items())), opts)
        assert_that(accepted, equal_to(want))


def test_two_worker_processes_write_what_one_process_writes(clean_run, tmp_path):
    """With --workers 2 (worker processes that read the decisions per shard as a side input and
    exit through pipelines.local_worker) the stage writes the same records, with the same fields,
    in the same shards, as with the in-process runner."""
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        args = ["dedup", "--input", str(clean_run / "kept" / "*.jsonl.gz"), "--output", str(out),
                "--set", "dedup.num_shards=3", "--set", "dedup.line_dedup=true"]
        assert main(args + (["--workers", "2"] if workers == 2 else [])) == 0
        outs[workers] = {sub: {p.name: sorted(gzip.open(p, "rt", encoding="utf-8").read().splitlines())
                               for p in sorted((out / sub).glob("*.gz"))} for sub in ("kept", "removed", "quarantine")}
    assert outs[2] == outs[1]
    kept = [json.loads(line) for lines in outs[1]["kept"].values() for line in lines]
    assert sum(len(lines) for lines in outs[1]["removed"].values()) > 0  # decisions that remove
    assert any(r.get("lines_removed") for r in kept)  # and line drops: both side inputs carry entries
