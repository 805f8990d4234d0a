"""Reading raw input files in Beam: every unit becomes a record or a quarantine entry.

Files are read whole by one worker each (shards are the unit of parallelism), line by line in
binary so that invalid UTF-8 on one line costs that line only, never the rest of the shard.
Each file also reports how many units it held; the stage checks its outcomes against that count.
"""
from __future__ import annotations

import io
import json
import os
from typing import Iterator

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from llmdata.records import (
    FieldSpec,
    Quarantined,
    parse_json_line,
    parse_text_document,
    record_from_object,
    split_blank_line_documents,
)

BAD = "bad"
UNITS = "units"

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


class ReadFileUnits(beam.DoFn):
    """One file in, its records out; quarantine entries on `bad`, (file, unit count) on `units`."""

    def __init__(self, input_format: str, text_mode: str, spec: FieldSpec, base: str):
        self.input_format = input_format
        self.text_mode = text_mode
        self.spec = spec
        self.base = base

    def process(self, path: str) -> Iterator:
        source = relative_source(path, self.base)
        fmt = detect_format(path, self.input_format)
        units = 0
        try:
            for item in self._units(path, fmt, source):
                units += 1
                if isinstance(item, Quarantined):
                    yield beam.pvalue.TaggedOutput(BAD, item.to_json())
                else:
                    yield item
        except Exception as err:  # a corrupt gzip stream, an unreadable parquet footer, ...
            units += 1
            detail = f"{type(err).__name__}: {err}".splitlines()[0][:300]
            yield beam.pvalue.TaggedOutput(
                BAD, Quarantined("unreadable_file", source, units, f"after {units - 1} units: {detail}").to_json()
            )
        yield beam.pvalue.TaggedOutput(UNITS, (source, units))

    def _units(self, path: str, fmt: str, source: str) -> Iterator:
        if fmt == "jsonl":
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as raw:
                stream = raw if hasattr(raw, "readline") else io.BufferedReader(raw)
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
                    yield parse_json_line(line, self.spec, source, number)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
                table = pq.ParquetFile(io.BytesIO(raw.read()))
                number = 0
                for batch in table.iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        number += 1
                        shown = json.dumps(row, default=str, ensure_ascii=False)
                        yield record_from_object(row, self.spec, source, number, shown)
        else:
            with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as raw:
                data = raw.read()
            if self.text_mode == "blank_line":
                documents = split_blank_line_documents(data)
                for start, chunk in documents:
                    yield parse_text_document(chunk, self.spec, source, start)
                if not documents:
                    yield Quarantined("empty_text", source, 1, "file holds no document", data)
            else:
                yield parse_text_document(data, self.spec, source, 1)
