"""Reading raw input files in Beam: every unit becomes a record or a quarantine entry.

Files are read whole by one worker each (shards are the unit of parallelism), line by line in
binary so that invalid UTF-8 on one line costs that line only, never the rest of the shard.
Each file also reports how many units it held; the stage checks its outcomes against that count.
"""
from __future__ import annotations

import bz2
import gzip
import io
import json
import os
from typing import BinaryIO, Callable, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines import fs, progress

from llmdata.errors import LlmpipeError
from llmdata.reasons import BadRecord
from llmdata.records import (
    FieldSpec,
    Quarantined,
    to_json_line,
    parse_json_line,
    parse_text_document,
    record_from_object,
    split_blank_line_documents,
)

BAD = "bad"
UNITS = "units"
PRODUCTS = "products.jsonl"
KINDS = "product_kinds.json"

_JSONL = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz", ".jsonl.zst", ".jsonl.bz2")
_PARQUET = (".parquet", ".pq")


def detect_format(path: str, configured: str) -> str:
    if configured != "auto":
        return configured
    lower = path.lower()
    if lower.endswith(_PARQUET):
        return "parquet"
    if lower.endswith(_JSONL):
        return "jsonl"
    return "text"


def relative_source(path: str, base: str) -> str:
    """The file's name relative to the input's fixed prefix: stable when the data moves."""
    if base and path.startswith(base):
        rel = path[len(base):].lstrip("/")
        return rel or os.path.basename(path)
    return os.path.basename(path)


def glob_base(pattern: str) -> str:
    """The directory part of a glob before its first wildcard."""
    cut = min((pattern.find(c) for c in "*?[" if c in pattern), default=-1)
    if cut < 0:
        return os.path.dirname(pattern)
    return pattern[:cut].rsplit("/", 1)[0] if "/" in pattern[:cut] else ""


def open_decompressed(path: str) -> BinaryIO:
    """A binary stream of the file's content, decompressed by Python's own modules.

    Beam's decompressor treats a truncated gzip stream as a normal end of file (`python
    bench/probes.py truncated-gzip`: half of a gzip file reads back as 30 bytes, no error), which
    would lose the rest of a shard
    silently; Python's gzip, bz2 and zstandard readers raise instead, and the reader quarantines
    the remainder as `unreadable_file`.
    """
    raw = progress.CountingReader(FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED))
    lower = path.lower()
    if lower.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if lower.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="rb")
    if lower.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    return raw if hasattr(raw, "readline") else io.BufferedReader(raw)


def iter_units(path: str, fmt: str, text_mode: str, spec: FieldSpec, source: str) -> Iterator:
    """Every unit of one file as a record (dict) or a Quarantined entry, in file order.

    A file that breaks off (corrupt compression, unreadable parquet) ends with one
    `unreadable_file` entry for the rest, so everything read before it is kept.
    """
    units = 0
    try:
        for item in _raw_units(path, fmt, text_mode, spec, source):
            units += 1
            progress.note(docs=1)
            yield item
    except Exception as err:  # a corrupt gzip stream, an unreadable parquet footer, ...
        detail = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        yield Quarantined(BadRecord.UNREADABLE_FILE, source, units + 1, f"after {units} units: {detail}")
    progress.note(files=1)


def _raw_units(path: str, fmt: str, text_mode: str, spec: FieldSpec, source: str) -> Iterator:
    if fmt == "jsonl":
        with open_decompressed(path) as stream:
            number = 0
            while True:
                line = stream.readline()
                if not line:
                    break
                number += 1
                if line.endswith(b"\n"):
                    line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                yield parse_json_line(line, spec, source, number)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        with progress.CountingReader(FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)) as raw:
            # read through the seekable stream: the footer, then one row group at a time (a whole
            # multi-GB shard in memory before its first row, as it was, does not scale)
            # (iter_batches over every row group pre-buffers them all: the whole file)
            table = pq.ParquetFile(raw if raw.seekable() else io.BytesIO(raw.read()))
            number = 0
            for group in range(table.num_row_groups):
                for batch in table.iter_batches(batch_size=1024, row_groups=[group]):
                    for row in batch.to_pylist():
                        number += 1
                        shown = json.dumps(row, default=str, ensure_ascii=False)
                        yield record_from_object(row, spec, source, number, shown)
    else:
        with open_decompressed(path) as stream:
            data = stream.read()
        if text_mode == "blank_line":
            documents = split_blank_line_documents(data)
            for start, chunk in documents:
                yield parse_text_document(chunk, source, start)
            if not documents:
                yield Quarantined(BadRecord.EMPTY_TEXT, source, 1, "file holds no document", data)
        else:
            yield parse_text_document(data, source, 1)


class ReadFileUnits(beam.DoFn):
    """One file in, its records out; quarantine entries on `bad`, (file, unit count) on `units`."""

    def __init__(self, input_format: str, text_mode: str, spec: FieldSpec, base: str):
        self.input_format = input_format
        self.text_mode = text_mode
        self.spec = spec
        self.base = base

    def process(self, path: str) -> Iterator:
        source = relative_source(path, self.base)
        units = 0
        for item in iter_units(path, detect_format(path, self.input_format), self.text_mode, self.spec, source):
            units += 1
            if isinstance(item, Quarantined):
                yield beam.pvalue.TaggedOutput(BAD, item.to_json())
            else:
                yield item
        yield beam.pvalue.TaggedOutput(UNITS, (source, units))


class BadRecordError(LlmpipeError, RuntimeError):
    """A bad record met a `fail` policy; the message names the file, line and kind."""


def quarantine_record(record: dict, reason: str, detail: str) -> dict:
    """A parsed record that a later step refuses, as a quarantine entry with its full line."""
    origin = record.get("origin", {})
    return Quarantined(reason, origin.get("file", ""), origin.get("line", 0), detail, to_json_line(record)).to_json()


def origin_of(record: dict) -> tuple[str, int]:
    """(file, line) the reader took the record from: unique per record, the order ids are first seen in."""
    return record["origin"]["file"], record["origin"]["line"]


def split_duplicate_id(doc_id: str, group: list[dict]) -> tuple[dict, list[dict]]:
    """Of records sharing an id, the first by (file, line), and quarantine entries for the others."""
    group = sorted(group, key=origin_of)
    return group[0], [duplicate_id_entry(other, origin_of(group[0])) for other in group[1:]]


class SplitDuplicateIds(beam.DoFn):
    """Of records sharing an id, keep the first by (file, line); quarantine the others."""

    def process(self, item: tuple[str, list[dict]]) -> Iterator:
        first, repeats = split_duplicate_id(*item)
        yield first
        for entry in repeats:
            yield beam.pvalue.TaggedOutput(BAD, entry)


class DedupIds(beam.PTransform):
    """Records with unique ids, and quarantine entries for the repeats (a keyed GroupByKey)."""

    def expand(self, records: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        out = (
            records
            | "ById" >> beam.Map(lambda r: (r["id"], r))
            | "GroupIds" >> beam.GroupByKey()
            | "Split" >> beam.ParDo(SplitDuplicateIds()).with_outputs(BAD, main="unique")
        )
        return out.unique, out[BAD]


@beam.ptransform_fn
def repeated_ids(records: beam.PCollection) -> beam.PCollection:
    """(id, origin of its first record by (file, line)) for every id that several records carry.

    A keyed GroupByKey of (id, origin) pairs: what crosses the shuffle is ids and positions, never
    a text, and the output holds only the repeated ids (usually none), small enough to be read as a
    side input (`is_first_of_id`; the dedup stage's exact groups). The records stay where they are.
    """

    def repeated(doc_id: str, origins: Iterable[tuple[str, int]]) -> Iterator[tuple[str, tuple[str, int]]]:
        origins = list(origins)
        if len(origins) > 1:
            yield doc_id, min(origins)  # origins are unique, so this is the first by (file, line)

    return (
        records
        | "IdOrigins" >> beam.Map(lambda r: (r["id"], origin_of(r)))
        | "GroupIds" >> beam.GroupByKey()
        | "Repeated" >> beam.FlatMapTuple(repeated)
    )


def is_first_of_id(doc_id: str, origin: tuple[str, int], firsts: dict[str, tuple[str, int]]) -> bool:
    """Whether the record at `origin` is the first of its id (`firsts` from `repeated_ids`)."""
    first = firsts.get(doc_id)
    return first is None or tuple(first) == tuple(origin)


def duplicate_id_entry(record: dict, first: tuple[str, int]) -> dict:
    """The quarantine entry of a record whose id was first seen at `first` (file, line)."""
    return quarantine_record(record, BadRecord.DUPLICATE_ID, f"id {record['id']!r} first seen at {first[0]}:{first[1]}")


class ApplyPolicy(beam.DoFn):
    """Quarantine (write with reason), drop (count only) or fail, per kind of bad record."""

    DROPPED = "dropped"

    def __init__(self, policies: dict[str, str], default: str):
        self.policies = policies
        self.default = default

    def process(self, bad: dict) -> Iterator:
        policy = self.policies.get(bad["reason"], self.default)
        if policy == "fail":
            raise BadRecordError(
                f"{bad['source']}:{bad['line']}: {bad['reason']} ({bad['detail']}); "
                f"policy for {bad['reason']!r} is 'fail'"
            )
        if policy == "drop":
            yield beam.pvalue.TaggedOutput(self.DROPPED, bad)
        else:
            yield bad


class Products:
    """Small side products (counts, statistics, plan, thresholds) gathered into one sink.

    Each is a `[kind, value]` JSON line of `_work/products.jsonl`; one sink instead of one per
    product keeps the pipeline's fixed cost low, and the driver reads them back by kind. Sums and
    counts go through `tally`, which shares one CombinePerKey among all of them: a CombineGlobally
    each adds eight transforms to the graph, and on small inputs building and running the graph
    costs more than the data.
    """

    def __init__(self) -> None:
        self.parts: list[beam.PCollection] = []
        self.tallies: list[beam.PCollection] = []
        self.kinds: dict[str, str] = {}  # kind -> "values", "total" or "pairs": what the driver reads back

    def declare(self, kind: str, shape: str) -> None:
        """Name a kind this pipeline produces as `shape` ("values", "total", "pairs"); `add` and
        `tally` declare their own. Called alone for a kind the config leaves empty (near dedup
        off, no labels), so the driver reads it as empty rather than as a misspelt kind."""
        if self.kinds.setdefault(kind, shape) != shape:
            raise ValueError(f"side product {kind!r} declared as {self.kinds[kind]} and as {shape}")

    def add(self, pcoll: beam.PCollection, kind: str) -> None:
        """Every element of `pcoll`, as `[kind, element]` lines (read back with `values`/`one`)."""
        self.declare(kind, "values")
        self.parts.append(pcoll | f"{kind}Product" >> beam.Map(lambda v, k=kind: json.dumps([k, v])))

    def tally(self, pcoll: beam.PCollection, kind: str, value: Optional[Callable] = None, key: Optional[Callable] = None) -> None:
        """The sum of `value(element)` (1: a count) over the collection, as `[kind, total]`, or per
        `key(element)` as one `[kind, [key, total]]` line each. An empty collection gives no line,
        which the driver reads as zero (`total`) or no pairs (`pairs`): the kind is declared."""
        self.declare(kind, "pairs" if key else "total")
        self.tallies.append(pcoll | f"{kind}Tally{len(self.tallies)}" >> beam.Map(
            lambda v, k=kind: ((k, key(v) if key else None), value(v) if value else 1)))

    def write(self, work: str) -> None:
        """The products sink, and beside it (written now, by the driver) the declared kinds."""
        fs.write_json(fs.join(work, KINDS), self.kinds)
        parts = list(self.parts)
        if self.tallies:
            parts.append(
                tuple(self.tallies) | "Tallies" >> beam.Flatten() | "SumTallies" >> beam.CombinePerKey(sum)
                | "TallyLines" >> beam.MapTuple(lambda kk, n: json.dumps([kk[0], n] if kk[1] is None else [kk[0], [kk[1], n]]))
            )
        _ = tuple(parts) | "Products" >> beam.Flatten() | "ProductsWrite" >> beam.io.WriteToText(
            fs.join(work, PRODUCTS), num_shards=1, shard_name_template=""
        )


def write_docs(pcoll: beam.PCollection, folder: str, label: str, num_shards: int) -> None:
    _ = pcoll | f"{label}Lines" >> beam.Map(to_json_line) | f"{label}Write" >> beam.io.WriteToText(
        fs.join(folder, "part"), file_name_suffix=".jsonl.gz", num_shards=num_shards
    )


def police_bad_records(bad: beam.PCollection, out: str, policies: dict, default: str) -> tuple[beam.PCollection, beam.PCollection]:
    """Bad entries through their policies; quarantined ones are written to `out/quarantine/`.

    Returns (quarantined, dropped); a `fail` policy stops the pipeline with a BadRecordError.
    """
    policed = bad | "Policy" >> beam.ParDo(ApplyPolicy(policies, default)).with_outputs(ApplyPolicy.DROPPED, main="quarantined")
    _ = policed.quarantined | "QuarantineLines" >> beam.Map(to_json_line) | "QuarantineWrite" >> beam.io.WriteToText(
        fs.join(out, "quarantine", "part"), file_name_suffix=".jsonl.gz"
    )
    return policed.quarantined, policed[ApplyPolicy.DROPPED]


def count_outcomes(products: "Products", units: beam.PCollection, outcomes: dict[str, tuple[beam.PCollection, Optional[str]]]) -> None:
    """The stage's accounting as products: `input` (units every file reported) and `counts`
    ((outcome, reason) -> n). `outcomes` maps an outcome name to its records and the field that
    holds their reason (None: the outcome name is the reason)."""

    for name, (pcoll, field) in outcomes.items():
        products.tally(pcoll, "counts", key=lambda r, n=name, f=field: (n, r[f] if f else n))
    products.tally(units, "input", value=lambda kv: kv[1])
