"""Document records and the parsing of raw input units into records or quarantine entries.

Every raw unit read from a file (a jsonl line, a parquet row, a text document) ends as exactly one
`Record` or one `Quarantined` entry; nothing is silently dropped. The functions here are pure so
that every malformed-input case is testable with a byte string.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Union

#: The kinds of bad input the reader recognises; each has a policy (quarantine, drop, fail).
BAD_RECORD_KINDS = (
    "blank_line",
    "invalid_utf8",
    "invalid_json",
    "invalid_unicode",
    "not_an_object",
    "missing_text",
    "null_text",
    "non_string_text",
    "empty_text",
    "whitespace_text",
    "invalid_id",
    "duplicate_id",
    "empty_after_normalization",
    "unreadable_file",
)


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
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "line": self.line,
        }
        if isinstance(self.raw, bytes):
            try:
                out["raw"] = self.raw.decode("utf-8")
            except UnicodeDecodeError:
                out["raw_b64"] = base64.b64encode(self.raw).decode("ascii")
        elif self.raw is not None:
            out["raw"] = self.raw
        return out


@dataclass
class FieldSpec:
    """Which input fields hold the text and the id; everything else becomes `meta`."""

    text_field: str = "text"
    id_field: str = "id"


Parsed = Union[dict, Quarantined]

#: A JSON escape of a UTF-16 surrogate; only lines holding one need the full check below.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

#: Fields a stage adds to a record; reading a stage's output back keeps them where they were
#: instead of folding them into `meta` (and keeps the first stage's `origin`).
STAGE_FIELDS = ("origin", "scores", "imputed", "reason", "cluster", "duplicate_of", "dup_kind", "lines_removed")
#: Fields the clean stage adds (the identified language and script, the outlier group). Kept where
#: they are only in a record read back from a stage's output (it carries `origin`): in raw input a
#: field of the same name is the user's own and goes to `meta`, where no stage overwrites it.
LANGUAGE_FIELDS = ("lang", "lang_score", "script", "group", "threshold_group")


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
        return Quarantined("not_an_object", source, line, f"got {type(obj).__name__}", raw)
    found, text = _get_path(obj, spec.text_field)
    if not found:
        return Quarantined("missing_text", source, line, f"no field {spec.text_field!r}", raw)
    if text is None:
        return Quarantined("null_text", source, line, f"{spec.text_field!r} is null", raw)
    if not isinstance(text, str):
        return Quarantined("non_string_text", source, line, f"{spec.text_field!r} is {type(text).__name__}", raw)
    if text == "":
        return Quarantined("empty_text", source, line, f"{spec.text_field!r} is empty", raw)
    if text.strip() == "":
        return Quarantined("whitespace_text", source, line, f"{spec.text_field!r} is whitespace only", raw)
    found_id, given_id = _get_path(obj, spec.id_field)
    if not found_id or given_id is None:
        doc_id = stable_id(source, line)
    elif isinstance(given_id, bool) or not isinstance(given_id, (str, int)):
        return Quarantined("invalid_id", source, line, f"{spec.id_field!r} is {type(given_id).__name__}", raw)
    elif isinstance(given_id, str) and given_id.strip() == "":
        return Quarantined("invalid_id", source, line, f"{spec.id_field!r} is empty", raw)
    else:
        doc_id = str(given_id)
    meta = dict(obj)
    _drop_path(meta, spec.text_field)
    _drop_path(meta, spec.id_field)
    from_stage = isinstance(meta.get("origin"), dict)
    carried = {k: meta.pop(k) for k in STAGE_FIELDS + (LANGUAGE_FIELDS if from_stage else ()) if k in meta}
    if not isinstance(carried.get("origin"), dict):
        carried["origin"] = {"file": source, "line": line}
    given_meta = meta.pop("meta", None)
    given_source = meta.pop("source", None)
    if isinstance(given_meta, dict):
        meta = {**given_meta, **meta}
    elif given_meta is not None:
        meta["meta"] = given_meta
    return {
        "id": doc_id,
        "text": text,
        "source": given_source if isinstance(given_source, str) and given_source else source,
        "meta": _finite(meta),
        **_finite(carried),
    }


def parse_json_line(raw: bytes, spec: FieldSpec, source: str, line: int) -> Parsed:
    """Parse one jsonl line (without its newline) into a record or a quarantine entry."""
    if raw.strip() == b"":
        return Quarantined("blank_line", source, line, "empty line", raw)
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Quarantined("invalid_utf8", source, line, f"byte {err.start}: {err.reason}", raw)
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as err:
        return Quarantined("invalid_json", source, line, f"{err.msg} at column {err.colno}", raw)
    except RecursionError:
        return Quarantined("invalid_json", source, line, "nested too deeply", raw)
    except ValueError as err:  # e.g. an integer longer than Python's 4300-digit conversion limit
        return Quarantined("invalid_json", source, line, str(err).splitlines()[0][:200], raw)
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(obj):
        return Quarantined("invalid_unicode", source, line, "unpaired surrogate escape (\\ud800-\\udfff)", raw)
    return record_from_object(obj, spec, source, line, raw)


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
        return Quarantined("invalid_utf8", source, unit, f"byte {err.start}: {err.reason}", raw)
    if text.strip() == "":
        kind = "empty_text" if text == "" else "whitespace_text"
        return Quarantined(kind, source, unit, "no text", raw)
    return {
        "id": stable_id(source, unit),
        "text": text,
        "source": source,
        "meta": {},
        "origin": {"file": source, "line": unit},
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
