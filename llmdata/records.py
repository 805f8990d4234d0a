"""Document records and the parsing of raw input units into records or quarantine entries.

Every raw unit read from a file (a jsonl line, a parquet row, a text document) ends as exactly one
`Record` or one `Quarantined` entry; nothing is silently dropped. The functions here are pure so
that every malformed-input case is testable with a byte string.
"""
from __future__ import annotations

import base64
import codecs
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from llmdata.reasons import LANGUAGE_FIELDS, STAGE_FIELDS, BadRecord, QuarantineField, RecordField

#: The kinds of bad input the reader recognises; each has a policy (quarantine, drop, fail).
BAD_RECORD_KINDS = BadRecord.values()


@dataclass
class Quarantined:
    """A raw unit that could not become a document, kept with enough context to find and fix it."""

    reason: str
    source: str
    line: int
    detail: str = ""
    raw: bytes | str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            QuarantineField.REASON: self.reason,
            QuarantineField.DETAIL: self.detail,
            QuarantineField.SOURCE: self.source,
            QuarantineField.LINE: self.line,
        }
        if isinstance(self.raw, bytes):
            try:
                out[QuarantineField.RAW] = self.raw.decode("utf-8")
            except UnicodeDecodeError:
                out[QuarantineField.RAW_B64] = base64.b64encode(self.raw).decode("ascii")
        elif self.raw is not None:
            out[QuarantineField.RAW] = self.raw
        return out


@dataclass
class FieldSpec:
    """Which input fields hold the text and the id; everything else becomes `meta`."""

    text_field: str = RecordField.TEXT
    id_field: str = RecordField.ID
    #: "dataset": a given id names the record in the whole input; "file": only within its file (row
    #: numbers per shard), so the id becomes "<source>:<id>" with the file relative to the glob
    id_scope: str = "dataset"


Parsed = Union[dict, Quarantined]

#: A JSON escape of a UTF-16 surrogate; only lines holding one need the full check below.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

#: STAGE_FIELDS (fields a stage adds to a record) and LANGUAGE_FIELDS (the clean stage's language,
#: script and outlier group) come from llmdata.reasons. Reading a stage's output back keeps them
#: where they were instead of folding them into `meta` (and keeps the first stage's `origin`);
#: LANGUAGE_FIELDS only in a record read back from a stage's output (it carries `origin`): in raw
#: input a field of the same name is the user's own and goes to `meta`, where no stage overwrites it.


def stable_id(source: str, position: int) -> str:
    """An id that survives reruns: a hash of where the record came from, not of its content."""
    digest = hashlib.blake2b(f"{source}\0{position}".encode(), digest_size=10)
    return digest.hexdigest()


def _get_path(obj: dict, dotted: str) -> tuple[bool, Any]:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _drop_path(obj: dict, dotted: str) -> None:
    parts = dotted.split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.get(part)
        if not isinstance(cur, dict):
            return
    cur.pop(parts[-1], None)


def _finite(value: Any) -> Any:
    """JSON allows no NaN/Infinity; Python's parser accepts them, so turn them into nulls."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def record_from_object(obj: Any, spec: FieldSpec, source: str, line: int, raw: Any) -> Parsed:
    """Turn one decoded object (a JSON object or a parquet row) into a record or a quarantine entry."""
    if not isinstance(obj, dict):
        detail = f"got {type(obj).__name__}"
        if isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
            detail = (f"got a list of {len(obj)} objects: a JSON array file? jsonl holds one object a line "
                      "(jq -c '.[]' converts)")
        return Quarantined(BadRecord.NOT_AN_OBJECT, source, line, detail, raw)
    found, text = _get_path(obj, spec.text_field)
    if not found:
        return Quarantined(BadRecord.MISSING_TEXT, source, line, f"no field {spec.text_field!r}", raw)
    if text is None:
        return Quarantined(BadRecord.NULL_TEXT, source, line, f"{spec.text_field!r} is null", raw)
    if isinstance(text, (bytes, bytearray)):  # a parquet BINARY column (Spark, older writers) holding UTF-8
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            return Quarantined(BadRecord.INVALID_UTF8, source, line,
                               f"{spec.text_field!r} bytes, byte {err.start}: {err.reason}", raw)
    if not isinstance(text, str):
        return Quarantined(BadRecord.NON_STRING_TEXT, source, line, f"{spec.text_field!r} is {type(text).__name__}", raw)
    if text == "":
        return Quarantined(BadRecord.EMPTY_TEXT, source, line, f"{spec.text_field!r} is empty", raw)
    if text.strip() == "":
        return Quarantined(BadRecord.WHITESPACE_TEXT, source, line, f"{spec.text_field!r} is whitespace only", raw)
    found_id, given_id = _get_path(obj, spec.id_field)
    if not found_id or given_id is None:
        doc_id = stable_id(source, line)
    elif isinstance(given_id, bool) or not isinstance(given_id, (str, int)):
        return Quarantined(BadRecord.INVALID_ID, source, line, f"{spec.id_field!r} is {type(given_id).__name__}", raw)
    elif isinstance(given_id, str) and given_id.strip() == "":
        return Quarantined(BadRecord.INVALID_ID, source, line, f"{spec.id_field!r} is empty", raw)
    else:
        doc_id = f"{source}:{given_id}" if spec.id_scope == "file" else str(given_id)
    meta = dict(obj)
    _drop_path(meta, spec.text_field)
    _drop_path(meta, spec.id_field)
    from_stage = isinstance(meta.get(RecordField.ORIGIN), dict)
    carried = {k: meta.pop(k) for k in STAGE_FIELDS + (LANGUAGE_FIELDS if from_stage else ()) if k in meta}
    if not isinstance(carried.get(RecordField.ORIGIN), dict):
        carried[RecordField.ORIGIN] = {"file": source, "line": line}
    given_meta = meta.pop(RecordField.META, None)
    given_source = meta.pop(RecordField.SOURCE, None)
    if isinstance(given_meta, dict):
        meta = {**given_meta, **meta}
    elif given_meta is not None:
        meta[RecordField.META] = given_meta
    return {
        RecordField.ID: doc_id,
        RecordField.TEXT: text,
        RecordField.SOURCE: given_source if isinstance(given_source, str) and given_source else source,
        RecordField.META: _finite(meta),
        **_finite(carried),
    }


def json_value(text: str) -> tuple[Any, Optional[str]]:
    """(the JSON value `text` holds, None), or (None, why it is not one): the decoder's message and
    column, "nested too deeply" for nesting past Python's recursion limit, or the message of any
    other ValueError (an integer longer than Python's 4300-digit conversion limit). Every reader of
    JSON lines (clean's records, the alignment stages' rows) decodes through here, so a line that
    is valid JSON to the grammar but not to Python becomes a bad row, never a traceback."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        return None, f"{err.msg}: column {err.colno}"
    except RecursionError:
        return None, "nested too deeply"
    except ValueError as err:
        return None, str(err).splitlines()[0][:200]


def parse_json_line(raw: bytes, spec: FieldSpec, source: str, line: int) -> Parsed:
    """Parse one jsonl line (without its newline) into a record or a quarantine entry.

    A UTF-8 byte order mark (EF BB BF) leading the line is ignored, as RFC 8259 section 8.1
    allows: editors and spreadsheet exports on Windows write one at the start of a file (and
    `cat` puts it mid-file), and Python's json rejects it, which lost the file's first record.
    """
    body = raw.removeprefix(codecs.BOM_UTF8)
    if body.strip() == b"":
        return Quarantined(BadRecord.BLANK_LINE, source, line, "empty line", raw)
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as err:
        return Quarantined(BadRecord.INVALID_UTF8, source, line, f"byte {err.start}: {err.reason}", raw)
    obj, why = json_value(decoded)
    if why is not None:
        return Quarantined(BadRecord.INVALID_JSON, source, line, why, raw)
    if lone_surrogates(raw, obj):
        return Quarantined(BadRecord.INVALID_UNICODE, source, line, "unpaired surrogate escape (\\ud800-\\udfff)", raw)
    return record_from_object(obj, spec, source, line, raw)


def lone_surrogates(raw: bytes, obj: Any) -> bool:
    """Whether the JSON line `raw`, decoded to `obj`, holds a string that is not valid Unicode: an
    escaped lone surrogate ("\\ud800"), which Python's json decodes to a string no UTF-8 writer
    can write (checked only when the line has such an escape)."""
    return bool(_SURROGATE_ESCAPE.search(raw)) and not _encodable(obj)


def _encodable(obj: Any) -> bool:
    """Whether every string in a decoded JSON value is valid Unicode (no lone surrogates).

    Python's json accepts "\\ud800" and gives a string that cannot be written as UTF-8; a paired
    escape ("\\ud83d\\ude00") becomes one character and passes.
    """
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def parse_text_document(raw: bytes, source: str, unit: int) -> Parsed:
    """A plain-text document (a whole file, or one blank-line separated block) as a record."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Quarantined(BadRecord.INVALID_UTF8, source, unit, f"byte {err.start}: {err.reason}", raw)
    if text.strip() == "":
        kind = BadRecord.EMPTY_TEXT if text == "" else BadRecord.WHITESPACE_TEXT
        return Quarantined(kind, source, unit, "no text", raw)
    return {
        RecordField.ID: stable_id(source, unit),
        RecordField.TEXT: text,
        RecordField.SOURCE: source,
        RecordField.META: {},
        RecordField.ORIGIN: {"file": source, "line": unit},
    }


def split_blank_line_documents(data: bytes) -> list[tuple[int, bytes]]:
    """Split a text file into documents at runs of blank lines; returns (first line number, bytes)."""
    docs: list[tuple[int, bytes]] = []
    current: list[bytes] = []
    start = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip() == b"":
            if current:
                docs.append((start, b"\n".join(current)))
                current = []
            continue
        if not current:
            start = number
        current.append(line.rstrip(b"\r"))
    if current:
        docs.append((start, b"\n".join(current)))
    return docs


def to_json_line(obj: dict) -> str:
    """One canonical jsonl line: UTF-8, no ASCII escaping, keys in insertion order."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)
