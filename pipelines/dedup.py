"""The dedup stage as one Beam pipeline; every step is keyed, nothing gathers the corpus.

    records ─► repeated ids (GroupByKey of (id, origin); the first origin of each, a side input)
        ─► group by candidate key (the first record of each id) ─► split at the exact level
        (verification) ─► keeper per exact group ─► shingles per script, MinHash of the keepers
        long enough (batched) ─► band buckets (GroupByKey per band) ─► candidate pairs
        ─► verification (shingle sets joined by id, compared per pair) ─► connected components
        (large-star / small-star rounds) ─► keeper per component ─► decision per record (join of
        ids per exact group), optional line dedup (line hashes) ─► per output shard: records
        (GroupByKey) with their decisions and line drops (side inputs keyed by shard), repeats of
        an id quarantined, kept / removed written sorted

Whole records move through two shuffles only, both plain GroupByKeys: the candidate-key groups,
which need the texts (exact-level verification, MinHash of the keepers), and the per-shard groups
that are written. The steps that only decide (which id repeats, which record is kept, clusters,
line drops) move ids, hashes and small tuples.

Outputs are written in sorted, hash-assigned shards, so a rerun gives byte-identical files.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import itertools
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import apache_beam as beam
import mmh3
import numpy as np

from llmdata.dedup import (
    DedupOptions,
    KeyOptions,
    band_keys,
    bucket_edges,
    dedup_key,
    estimated_jaccard,
    key_hash,
    large_star,
    line_hash,
    preference_key,
    shingle_list,
    small_star,
    split_exact,
)
from llmdata.reasons import DupKind, Outcome, QuarantineField as Q, RecordField as F, ShingleUnit
from llmdata.records import FieldSpec, to_json_line
from pipelines import fs
from pipelines.runner import beam_pipeline
from pipelines.stage import SideProducts
from pipelines.beam_io import (
    BAD,
    UNITS,
    Products,
    ReadFileUnits,
    count_outcomes,
    glob_base,
    is_first_of_id,
    origin_of,
    police_bad_records,
    repeated_ids,
    split_duplicate_id,
)

WORK = "_work"
_SIM_BINS = 20


def document_shingles(text: str, opts: DedupOptions) -> tuple[np.ndarray, str, int]:
    """Sorted unique 32-bit hashes (mmh3 of the UTF-8 shingle) of the candidate key's shingles,
    with the unit ("word" | "char") and n chosen for the document's script (`shingle_plan`)."""
    key = dedup_key(text, opts.key)
    unit, n = opts.shingle_plan(key)
    grams = shingle_list(key, n, unit)  # repeats included: their hashes are made unique below
    # mmh3's signed 32-bit hashes read as unsigned: the same bits as signed=False, without a Python
    # call per shingle (map runs in C); then np.unique by a sort (several times faster at this size)
    hashes = np.fromiter(map(mmh3.hash, grams, itertools.repeat(opts.seed, len(grams))), dtype=np.int32,
                         count=len(grams)).view(np.uint32)
    hashes.sort()
    if hashes.size > 1:
        hashes = hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))]
    return hashes, unit, n


def shingle_hashes(text: str, opts: DedupOptions) -> np.ndarray:
    """The shingle hash set of `document_shingles`: the MinHash input and the sets compared by exact Jaccard."""
    return document_shingles(text, opts)[0]


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else 1.0


class ExactGroups(beam.DoFn):
    """One candidate-key group, verified: split at the exact level (`split_exact`), then in each
    exact group the preferred record is its keeper and the others are exact duplicates.

    Input: the group's records (every record with this candidate key, repeated ids included) and,
    as a side input, the first origin of each repeated id (`repeated_ids`): only the first record
    of each id takes part; the repeats are quarantined at the write. Main output: (exact keeper's id,
    record id) for every record; `reps`: the keepers (whole records), for MinHash; `rejected`: one
    count per record that shared a candidate key with a different text and so stayed (``x = y + 1``
    beside ``x = y - 1``); `lines` (with line dedup): (id, the record's line hashes).
    """

    REPS = "reps"
    REJECTED = "rejected"
    LINES = "lines"

    def __init__(self, prefer: str, prefer_field: Optional[str], key_opts: Optional[KeyOptions],
                 line_min_chars: Optional[int] = None):
        self.prefer = prefer
        self.prefer_field = prefer_field
        self.key_opts = key_opts  # None: no exact stage, every record is its own group
        self.line_min_chars = line_min_chars  # None: no line dedup

    def process(self, item: tuple[str, Iterable[dict]], firsts: dict[str, tuple[str, int]]) -> Iterator:
        _, docs = item
        group = [r for r in docs if is_first_of_id(r[F.ID], origin_of(r), firsts)]
        if not group:
            return
        parts = split_exact(group, self.key_opts) if self.key_opts is not None else [group]
        for part in parts:
            part = sorted(part, key=lambda r: preference_key(r, self.prefer, self.prefer_field))
            keeper = part[0]
            yield beam.pvalue.TaggedOutput(self.REPS, keeper)
            for rec in part:
                yield keeper[F.ID], rec[F.ID]
                if self.line_min_chars is not None:
                    yield beam.pvalue.TaggedOutput(self.LINES, (rec[F.ID], line_hashes(rec[F.TEXT], self.line_min_chars)))
        if len(parts) > 1:
            yield beam.pvalue.TaggedOutput(self.REJECTED, len(group) - max(len(p) for p in parts))


class Signatures(beam.DoFn):
    """MinHash signatures for a batch of keepers with datasketch; shingle sets kept for verification.

    A document with fewer distinct shingles than `min_shingles_needed` gets none (it can only be an
    exact duplicate); `units` counts, per shingle kind ("word5", "char5", "too_short"), the documents.
    """

    UNITS = "units"

    def __init__(self, opts: DedupOptions):
        self.o = opts

    def setup(self) -> None:
        self.template = minhash_template(self.o)

    def process(self, batch: list[dict]) -> Iterator:
        o = self.o
        for rec in batch:
            hashes, unit, n = document_shingles(rec[F.TEXT], o)
            if hashes.size < o.min_shingles_needed(n):
                yield beam.pvalue.TaggedOutput(self.UNITS, ShingleUnit.TOO_SHORT)
                continue
            yield beam.pvalue.TaggedOutput(self.UNITS, f"{unit}{n}")
            pref = preference_key(rec, o.prefer, o.prefer_field)
            yield rec[F.ID], {"sig": minhash_signature(hashes, o, self.template), "set": hashes, "pref": pref}


def minhash_template(opts: DedupOptions):
    """A datasketch MinHash whose permutations (they depend only on num_perm and seed) are reused."""
    from datasketch import MinHash

    return MinHash(num_perm=opts.num_perm, seed=opts.seed, hashfunc=int)


def minhash_signature(hashes: np.ndarray, opts: DedupOptions, template=None) -> np.ndarray:
    """datasketch MinHash signature (num_perm values, the scheme's dtype) of a shingle hash set
    (uint32 array; the 32-bit shingle hashes are the MinHash's input hash values).

    The whole array is handed to `MinHash.update_batch` as one batch item whose "hash value" is the
    array itself (hashfunc the identity): update_batch turns its list of hash values into a column
    with numpy, so the array becomes the same column a list of one int per shingle gives (the
    documented use, ``hashfunc=int`` with ``hashes.tolist()``, tested equal on any set), without a
    Python call and a Python int per shingle (a third of the signature's cost)."""
    from datasketch import MinHash

    template = template if template is not None else minhash_template(opts)
    m = MinHash(num_perm=opts.num_perm, seed=opts.seed, hashfunc=_same, permutations=template.permutations,
                scheme=template.scheme)
    if hashes.size:  # an empty batch leaves the signature as it is
        m.update_batch([hashes])
    return np.asarray(m.hashvalues)


def _same(x):
    return x


def near_pair(a: str, b: str, opts: DedupOptions, bands: int, rows: int, template=None) -> tuple[bool, float]:
    """What the stage decides for two texts that are not exact duplicates, without Beam: (found,
    Jaccard). Found when both are long enough for near dedup, their signatures share a band (the
    LSH candidate step) and the verification accepts them (`verify`). Jaccard is the exact one of
    their shingle sets (0.0 when either is too short)."""
    template = template if template is not None else minhash_template(opts)
    sets = [document_shingles(t, opts) for t in (a, b)]
    if any(h.size < opts.min_shingles_needed(n) for h, _, n in sets):
        return False, 0.0
    sigs = [minhash_signature(h, opts, template) for h, _, _ in sets]
    sim = exact_jaccard(sets[0][0], sets[1][0])
    if not set(band_keys(sigs[0], bands, rows)) & set(band_keys(sigs[1], bands, rows)):
        return False, sim
    check = sim if opts.verify == "exact" else estimated_jaccard(*sigs)
    return opts.verify == "none" or check >= opts.threshold, sim


def verify_edges(edges: beam.PCollection, data: beam.PCollection, opts: DedupOptions) -> beam.PCollection:
    """Accepted pairs (a, b, similarity): each candidate pair goes to both its ends, picks up that
    document's shingle set (`verify: exact`) or signature (otherwise) in one join by id, and the
    two halves meet in a GroupByKey per pair, where they are compared. Each document's set moves
    once, plus once per candidate pair it is in."""
    field = "set" if opts.verify == "exact" else "sig"

    def to_ends(e: tuple[str, str]) -> Iterator:
        yield e[0], e
        yield e[1], e

    def attach(item: tuple[str, dict]) -> Iterator:
        _, grouped = item
        if not grouped["data"]:
            return
        d = grouped["data"][0]
        for e in grouped["edge"]:
            yield e, d

    def compare(pair: tuple[str, str], halves: Iterable[np.ndarray]) -> Iterator:
        halves = list(halves)
        if len(halves) != 2:  # an end without data (never, for pairs from the bands)
            return
        sim = exact_jaccard(*halves) if opts.verify == "exact" else estimated_jaccard(*halves)
        if opts.verify == "none" or sim >= opts.threshold:
            a, b = sorted(pair)
            yield a, b, sim

    return (
        {"edge": edges | "EdgeEnds" >> beam.FlatMap(to_ends),
         "data": data | "VerifyData" >> beam.MapTuple(lambda node, d: (node, d[field]))}
        | "JoinEnds" >> beam.CoGroupByKey()
        | "Attach" >> beam.FlatMap(attach)
        | "GroupPairs" >> beam.GroupByKey()
        | "Compare" >> beam.FlatMapTuple(compare)
    )


def connected_components(edges: beam.PCollection, rounds: int) -> tuple[beam.PCollection, beam.PCollection]:
    """(node, root) for every node of the graph, root the smallest id of its component.

    Alternating large-star and small-star rounds (Kiveris et al. 2014) turn every component
    into a star around its smallest node; the rounds are unrolled, and the second output holds,
    for each node with edges both in and out, how many edges still do not point at a root: it
    must be empty.
    """

    def both_ways(e: tuple[str, str]) -> Iterator:
        yield e[0], e[1]
        yield e[1], e[0]

    def toward_smaller(e: tuple[str, str]) -> tuple[str, str]:
        a, b = e
        return (a, b) if b <= a else (b, a)

    # Both steps read a node's neighbours as a set, so an edge that arrives twice counts once: the
    # rounds carry the repeats on (each step emits one edge per node and distinct neighbour, so they
    # do not grow), and one Distinct after the last round replaces one per round, each a shuffle.
    current = edges
    for i in range(rounds):
        current = (
            current
            | f"LargeIn{i}" >> beam.FlatMap(both_ways)
            | f"LargeGroup{i}" >> beam.GroupByKey()
            | f"Large{i}" >> beam.FlatMapTuple(large_star)
            | f"SmallIn{i}" >> beam.Map(toward_smaller)
            | f"SmallGroup{i}" >> beam.GroupByKey()
            | f"Small{i}" >> beam.FlatMapTuple(small_star)
        )
    current = current | "DistinctEdges" >> beam.Distinct()

    # Converged when every edge is (node, root): no root has an edge to a smaller node.
    def unconverged(item: tuple[str, dict]) -> Iterator:
        node, grouped = item
        if grouped["out"] and grouped["in"]:
            yield len(grouped["in"])

    targets = current | "Targets" >> beam.Map(lambda e: (e[1], e[0]))
    bad = (
        {"out": current, "in": targets}
        | "ConvergenceJoin" >> beam.CoGroupByKey()
        | "Unconverged" >> beam.FlatMap(unconverged)
    )
    labels = (
        current | "Members" >> beam.Map(lambda e: (e[0], e[1])),
        current | "Roots" >> beam.Map(lambda e: (e[1], e[1])),
    ) | "Labels" >> beam.Flatten() | "DistinctLabels" >> beam.Distinct()
    return labels, bad


class NearKeepers(beam.DoFn):
    """One component: its preferred member is kept; the others are near duplicates of it."""

    def process(self, item: tuple[str, list[tuple[tuple, str]]]) -> Iterator:
        root, members = item
        members = sorted(members)
        keeper = members[0][1]
        for _, node in members:
            yield node, {"cluster": root, "keeper": keeper, "size": len(members)}


class Assign(beam.DoFn):
    """One exact group (its record ids) with its keeper's component: decide kept or removed for each
    record. Output: (id, (removed, the fields to add to the record, in this order))."""

    def process(self, item: tuple[str, dict]) -> Iterator:
        exact_keeper, grouped = item
        near = grouped["near"][0] if grouped["near"] else None
        ids = grouped["docs"]
        cluster = near["cluster"] if near else (exact_keeper if len(ids) > 1 else None)
        for doc_id in ids:
            fields = {F.CLUSTER: cluster} if cluster is not None else {}
            if doc_id != exact_keeper:
                fields.update({F.DUPLICATE_OF: exact_keeper, F.DUP_KIND: DupKind.EXACT})
            elif near and near["keeper"] != doc_id:
                fields.update({F.DUPLICATE_OF: near["keeper"], F.DUP_KIND: DupKind.NEAR})
            yield doc_id, (F.DUP_KIND in fields, fields)


def line_hashes(text: str, min_chars: int) -> list[str]:
    """The distinct `line_hash`es of a text's lines of at least `min_chars` characters (stripped)."""
    seen: dict[str, None] = {}
    for line in text.split("\n"):
        if len(line.strip()) >= min_chars:
            seen.setdefault(line_hash(line), None)
    return list(seen)


def line_drops(lines: beam.PCollection, decisions: beam.PCollection) -> beam.PCollection:
    """C4-style: a line (at least `line_min_chars` long) seen in several kept documents stays only
    in the kept document with the smallest id. From (id, line hashes) of every record and the
    decisions (`Assign`), the (doc id, line hash) drops."""

    def kept_lines(item: tuple[str, dict]) -> Iterator:
        doc_id, grouped = item
        if any(not removed for removed, _ in grouped["decision"]):
            for hashes in grouped["lines"]:
                for h in hashes:
                    yield h, doc_id

    def losers(item: tuple[str, list[str]]) -> Iterator:
        h, ids = item
        owner = min(ids)
        for doc_id in set(ids):
            if doc_id != owner:
                yield doc_id, h

    return (
        {"lines": lines, "decision": decisions}
        | "JoinLineHashes" >> beam.CoGroupByKey()
        | "KeptLineHashes" >> beam.FlatMap(kept_lines)
        | "GroupLines" >> beam.GroupByKey()
        | "LineLosers" >> beam.FlatMap(losers)
    )


def without_lines(record: dict, drop: set[str], min_chars: int) -> tuple[dict, bool]:
    """The record with its lines in `drop` removed (`lines_removed` counts them), and whether any
    text is left."""
    kept_lines, removed = [], 0
    for line in record[F.TEXT].split("\n"):
        if len(line.strip()) >= min_chars and line_hash(line) in drop:
            removed += 1
        else:
            kept_lines.append(line)
    text = "\n".join(kept_lines).strip("\n")
    return {**record, F.TEXT: text, F.LINES_REMOVED: removed}, bool(text.strip())


def shard_of(doc_id: str, num_shards: int) -> int:
    """The output shard of a record: a hash of its id (blake2b, 32 bits) modulo `num_shards`."""
    return int(hashlib.blake2b(doc_id.encode(), digest_size=4).hexdigest(), 16) % num_shards


def write_shard(records: list[dict], folder: str, shard: int, num_shards: int) -> str:
    """Records sorted by id into `folder/part-<shard>-of-<num_shards>.jsonl.gz`; gzip headers carry
    no timestamp, so the same records always give byte-identical files."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        for rec in sorted(records, key=lambda r: r[F.ID]):
            gz.write(to_json_line(rec).encode("utf-8") + b"\n")
    path = fs.join(folder, f"part-{shard:05d}-of-{num_shards:05d}.jsonl.gz")
    fs.write_bytes_atomic(path, buf.getvalue())
    return path


class WriteShards(beam.DoFn):
    """One output shard: every record whose id hashes to it (repeated ids included, so the repeats
    are quarantined here), with, as side inputs keyed by shard (`AsMultiMap`: the runner hands over
    this shard's entries only), the decisions for those ids and the line drops. Each first record
    of its id gets its decision's fields (and loses its dropped lines) and is written to the kept
    or the removed shard file, sorted by id. Outputs the written records (main: kept, `removed`)
    and the repeats' quarantine entries (`bad`).

    The records are a plain GroupByKey and the decisions side inputs, not one CoGroupByKey of the
    three: the local runner copies the inputs of a CoGroupByKey (a Flatten) through a stage of
    their own, here every whole record once more.

    Raises RuntimeError when an id of the shard has records but no decision or a decision but no
    records: the join must never drop or invent a document. (A shard no record hashes to is not
    visited, so a decision there would go unnoticed; it could write nothing, having no text.)
    """

    REMOVED = Outcome.REMOVED

    def __init__(self, out: str, num_shards: int, line_min_chars: Optional[int]):
        self.out = out
        self.num_shards = num_shards
        self.line_min_chars = line_min_chars  # None: no line dedup

    def process(self, item: tuple[int, Iterable[dict]], decisions_by_shard: Mapping[int, Iterable[tuple[str, tuple]]],
                drops_by_shard: Mapping[int, Iterable[tuple[str, str]]]) -> Iterator:
        shard, docs = item
        by_id: dict[str, list[dict]] = {}
        for rec in docs:
            by_id.setdefault(rec[F.ID], []).append(rec)
        shard_decisions = list(decisions_by_shard[shard])
        decisions = dict(shard_decisions)
        if len(decisions) != len(shard_decisions) or decisions.keys() != by_id.keys():
            odd = sorted(set(by_id) ^ set(decisions))[:3] or sorted(decisions)[:3]
            raise RuntimeError(f"dedup: shard {shard}: records and decisions do not match one to one (ids {odd})")
        drops: dict[str, set[str]] = {}
        for doc_id, h in drops_by_shard[shard]:
            drops.setdefault(doc_id, set()).add(h)
        kept, removed = [], []
        for doc_id, group in by_id.items():
            rec, repeats = split_duplicate_id(doc_id, group)
            for entry in repeats:
                yield beam.pvalue.TaggedOutput(BAD, entry)
            is_removed, fields = decisions[doc_id]
            out = {**rec, **fields}
            if is_removed:
                removed.append(out)
            elif doc_id in drops:
                out, has_text = without_lines(out, drops[doc_id], self.line_min_chars)
                if has_text:
                    kept.append(out)
                else:
                    removed.append({**out, F.DUP_KIND: DupKind.LINES})
            else:
                kept.append(out)
        for records, sub in ((kept, "kept"), (removed, "removed")):
            if records:
                write_shard(records, fs.join(self.out, sub), shard, self.num_shards)
        yield from kept
        for rec in removed:
            yield beam.pvalue.TaggedOutput(self.REMOVED, rec)


def _similarity_bin(sim: float) -> int:
    return min(int(sim * _SIM_BINS), _SIM_BINS - 1)


def build_pipeline(p: beam.Pipeline, files: list[str], base: str, out: str, opts: DedupOptions, num_shards: int,
                   policies: dict, default_policy: str, bands: int, rows: int) -> None:
    work = fs.join(out, WORK)
    read = (
        p
        | "Files" >> beam.Create(files)
        | "Read" >> beam.ParDo(ReadFileUnits("auto", "file", FieldSpec(), base)).with_outputs(BAD, UNITS, main="records")
    )
    records = read.records
    products = Products()

    # Only the steps below that need a text get whole records: the exact groups (verification,
    # MinHash of the keepers) and the write. The duplicate-id check, the assignment and the line
    # dedup move ids, hashes and decisions; the write joins them back to the records per shard.
    key_opts = opts.key
    if opts.exact:
        keyed = records | "CandidateKey" >> beam.Map(lambda r: (key_hash(dedup_key(r[F.TEXT], key_opts)), r))
    else:
        keyed = records | "OwnKey" >> beam.Map(lambda r: (r[F.ID], r))
    # The repeated ids (usually none) reach the exact groups as a side input, so the records go
    # from the reader straight into the candidate-key shuffle: a CoGroupByKey with them would first
    # copy every record through a Flatten of its own.
    firsts = beam.pvalue.AsDict(records | "DuplicateIds" >> repeated_ids())
    groups = (
        keyed
        | "GroupExact" >> beam.GroupByKey()
        | "ExactGroups" >> beam.ParDo(ExactGroups(opts.prefer, opts.prefer_field, key_opts if opts.exact else None,
                                                  opts.line_min_chars if opts.line_dedup else None), firsts)
        .with_outputs(ExactGroups.REPS, ExactGroups.REJECTED, ExactGroups.LINES, main="docs")
    )
    docs_by_keeper = groups.docs
    reps = groups[ExactGroups.REPS]
    products.tally(groups[ExactGroups.REJECTED], "exact_candidates_rejected", value=lambda n: n)

    if opts.near:
        signed = (
            reps
            | "Batch" >> beam.BatchElements(min_batch_size=16, max_batch_size=256)
            | "MinHash" >> beam.ParDo(Signatures(opts)).with_outputs(Signatures.UNITS, main="data")
        )
        data = signed.data
        products.tally(signed[Signatures.UNITS], "shingle_units", key=lambda u: u)
        candidates = (
            data
            | "Bands" >> beam.FlatMap(lambda kv: [(band, kv[0]) for band in band_keys(kv[1]["sig"], bands, rows)])
            | "GroupBands" >> beam.GroupByKey()
            | "BucketEdges" >> beam.FlatMapTuple(lambda _, ids: bucket_edges(list(ids), opts.all_pairs_up_to))
            | "DistinctCandidates" >> beam.Distinct()
        )
        accepted = verify_edges(candidates, data, opts)
        labels, unconverged = connected_components(accepted | "EdgePairs" >> beam.Map(lambda e: (e[0], e[1])), opts.max_rounds)
        prefs = data | "Prefs" >> beam.Map(lambda kv: (kv[0], kv[1]["pref"]))
        near = (
            {"label": labels, "pref": prefs}
            | "JoinPrefs" >> beam.CoGroupByKey()
            | "ByRoot" >> beam.FlatMap(lambda kv: [(root, (kv[1]["pref"][0], kv[0])) for root in kv[1]["label"]])
            | "GroupComponents" >> beam.GroupByKey()
            | "NearKeepers" >> beam.ParDo(NearKeepers())
        )
        products.tally(candidates, "candidates")
        products.tally(unconverged, "unconverged", value=lambda n: n)
        products.tally(accepted, "similarity_hist", key=lambda e: _similarity_bin(e[2]))
    else:
        near = p | "NoNear" >> beam.Create([])
        for kind, shape in (("shingle_units", "pairs"), ("candidates", "total"), ("unconverged", "total"),
                            ("similarity_hist", "pairs")):
            products.declare(kind, shape)

    decisions = (
        {"docs": docs_by_keeper, "near": near}
        | "JoinAssign" >> beam.CoGroupByKey()
        | "Assign" >> beam.ParDo(Assign())
    )
    if opts.line_dedup:
        drops = line_drops(groups[ExactGroups.LINES], decisions)
        products.tally(drops, "lines_removed")
        products.tally(drops | "DocsTouched" >> beam.Keys() | "DistinctTouched" >> beam.Distinct(), "docs_with_lines_removed")
    else:
        drops = p | "NoLineDrops" >> beam.Create([])
        products.declare("lines_removed", "total")
        products.declare("docs_with_lines_removed", "total")

    def by_shard(label: str, pcoll: beam.PCollection, doc_id: Callable[[Any], str]) -> beam.PCollection:
        return pcoll | f"{label}ByShard" >> beam.Map(lambda e: (shard_of(doc_id(e), num_shards), e))

    written = (
        by_shard("Docs", records, lambda r: r[F.ID])
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShards(out, num_shards, opts.line_min_chars if opts.line_dedup else None),
                                      beam.pvalue.AsMultiMap(by_shard("Decisions", decisions, lambda d: d[0])),
                                      beam.pvalue.AsMultiMap(by_shard("Drops", drops, lambda d: d[0])))
        .with_outputs(WriteShards.REMOVED, BAD, main="kept")
    )
    kept, removed = written.kept, written[WriteShards.REMOVED]
    bad = (read[BAD], written[BAD]) | "AllBad" >> beam.Flatten()
    quarantined, dropped = police_bad_records(bad, out, policies, default_policy)

    def cluster_of(r: dict) -> list[str]:
        return [r[F.CLUSTER]] if F.CLUSTER in r else []

    cluster_sizes = (  # cluster ids flattened, not records: the local runner copies a Flatten's input
        (kept | "KeptClusterIds" >> beam.FlatMap(cluster_of), removed | "RemovedClusterIds" >> beam.FlatMap(cluster_of))
        | "Clustered" >> beam.Flatten()
        | "ClusterSize" >> beam.combiners.Count.PerElement()
    )
    products.tally(cluster_sizes, "cluster_size_hist", key=lambda kv: kv[1])
    products.tally(kept, "by_language", key=lambda r: (language_of(r), Outcome.KEPT))
    products.tally(removed, "by_language", key=lambda r: (language_of(r), r[F.DUP_KIND]))
    count_outcomes(products, read[UNITS], {
        Outcome.KEPT: (kept, None), Outcome.REMOVED: (removed, F.DUP_KIND),
        Outcome.QUARANTINED: (quarantined, Q.REASON), Outcome.DROPPED: (dropped, Q.REASON),
    })
    products.add(
        removed | "RemovedEx" >> beam.Map(lambda r: (r[F.DUP_KIND], (r[F.ID], r.get(F.DUPLICATE_OF) or "-", r[F.TEXT][:160])))
        | "RemovedTop" >> beam.combiners.Top.PerKey(3, key=lambda e: e[0], reverse=True),
        "examples",
    )
    products.write(work)


def by_language(pairs: list) -> dict[str, dict[str, int]]:
    """{lang: {"input", "kept", "exact", "near"[, "lines"]}} from the `by_language` tallies, the
    languages with most input first."""
    out: dict[str, dict[str, int]] = {}
    for (lang, outcome), n in pairs:
        g = out.setdefault(lang, {"input": 0, Outcome.KEPT: 0, DupKind.EXACT: 0, DupKind.NEAR: 0})
        g[outcome] = g.get(outcome, 0) + n
        g["input"] += n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["input"], kv[0])))


def language_of(record: dict) -> str:
    """The language a record is counted under in the per-language funnel: its `lang` (the clean
    stage's, or an input's own, read into `meta`), else the dominant script of its text."""
    meta = record.get(F.META)
    lang = record.get(F.LANG, meta.get(F.LANG) if isinstance(meta, dict) else None)
    if isinstance(lang, str) and lang:
        return lang
    from llmdata.scripts import dominant_script

    return dominant_script(record[F.TEXT])


def run_pipeline(files: list[str], pattern: str, out: str, opts: DedupOptions, num_shards: int, policies: dict,
                 default_policy: str, beam_args: list[str]) -> tuple[int, int]:
    bands, rows = opts.banding()
    with beam_pipeline(beam_args) as p:
        build_pipeline(p, files, glob_base(pattern), out, opts, num_shards, policies, default_policy, bands, rows)
    return bands, rows


def summary_products(products: SideProducts) -> dict[str, Any]:
    """The figures of clusters.json from the pipeline's side products."""
    sizes = {int(size): n for size, n in products.pairs("cluster_size_hist")}
    sims = {int(b): n for b, n in products.pairs("similarity_hist")}
    return {
        "candidates": products.total("candidates"),
        "unconverged_edges": products.total("unconverged"),
        "cluster_size_histogram": dict(sorted(sizes.items())),
        "verified_similarity_histogram": {f"{b / _SIM_BINS:.2f}-{(b + 1) / _SIM_BINS:.2f}": sims.get(b, 0) for b in range(_SIM_BINS) if sims.get(b)},
        "lines_removed": products.total("lines_removed"),
        "exact_candidates_rejected": products.total("exact_candidates_rejected"),
        "shingle_units": dict(sorted(products.pairs("shingle_units"))),
        "docs_with_lines_removed": products.total("docs_with_lines_removed"),
        "by_language": by_language(products.pairs("by_language")),
    }
