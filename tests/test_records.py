"""Parsing raw units: every malformed case becomes a quarantine entry with the right reason."""
import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.records import (
    BAD_RECORD_KINDS,
    FieldSpec,
    Quarantined,
    parse_json_line,
    parse_text_document,
    split_blank_line_documents,
    stable_id,
)

SPEC = FieldSpec()


def reason(raw: bytes, spec: FieldSpec = SPEC) -> str:
    out = parse_json_line(raw, spec, "f.jsonl", 3)
    return out.reason if isinstance(out, Quarantined) else "ok"


def test_each_bad_kind_has_its_reason():
    assert reason(b"") == "blank_line"
    assert reason(b"   ") == "blank_line"
    assert reason(b'{"text": "caf\xe9"}') == "invalid_utf8"
    assert reason(b'{"text": "x"') == "invalid_json"
    assert reason(b"{'text': 'x'}") == "invalid_json"
    assert reason(b"[1, 2]") == "not_an_object"
    assert reason(b'"a string"') == "not_an_object"
    assert reason(b"null") == "not_an_object"
    assert reason(b'{"body": "x"}') == "missing_text"
    assert reason(b'{"text": null}') == "null_text"
    assert reason(b'{"text": 42}') == "non_string_text"
    assert reason(b'{"text": ["a"]}') == "non_string_text"
    assert reason(b'{"text": ""}') == "empty_text"
    assert reason(b'{"text": " \\n\\t"}') == "whitespace_text"
    assert reason(b'{"id": [1], "text": "x"}') == "invalid_id"
    assert reason(b'{"id": true, "text": "x"}') == "invalid_id"
    assert reason(b'{"id": "  ", "text": "x"}') == "invalid_id"
    assert reason(b'{"id": 7, "text": "x"}') == "ok"
    assert reason(b'{"text": "lone \\ud800 surrogate"}') == "invalid_unicode"
    assert reason(b'{"text": "fine", "meta": {"note": "\\udfff"}}') == "invalid_unicode"
    assert reason(b'{"text": "paired \\ud83d\\ude00 emoji"}') == "ok"
    assert reason(b'{"text": "x", "n": ' + b"9" * 5000 + b"}") == "invalid_json"  # past the int-conversion limit
    assert reason(b'{"text": "x", "n": ' + b"9" * 400 + b"}") == "ok"


def test_quarantine_keeps_raw_line_text_or_base64():
    q = parse_json_line(b'{"text": "\xff"}', SPEC, "a/b.jsonl", 12)
    out = q.to_json()
    assert out["source"] == "a/b.jsonl" and out["line"] == 12 and out["reason"] == "invalid_utf8"
    assert base64.b64decode(out["raw_b64"]) == b'{"text": "\xff"}'
    q = parse_json_line(b'{"text": 1}', SPEC, "a.jsonl", 1).to_json()
    assert q["raw"] == '{"text": 1}' and "raw_b64" not in q


def test_record_fields_ids_and_meta():
    rec = parse_json_line(b'{"id": 5, "text": "hi", "lang": "en", "meta": {"n": 1}, "source": "web"}', SPEC, "f", 1)
    assert rec["id"] == "5" and rec["text"] == "hi" and rec["source"] == "web"
    assert rec["meta"] == {"n": 1, "lang": "en"}
    assert rec["origin"] == {"file": "f", "line": 1}
    generated = parse_json_line(b'{"text": "hi"}', SPEC, "f", 9)
    assert generated["id"] == stable_id("f", 9) == parse_json_line(b'{"text": "other"}', SPEC, "f", 9)["id"]
    assert generated["source"] == "f"


def test_configurable_and_nested_fields():
    spec = FieldSpec(text_field="content.body", id_field="doc_id")
    rec = parse_json_line(b'{"doc_id": "a", "content": {"body": "hello", "x": 1}}', spec, "f", 1)
    assert rec["id"] == "a" and rec["text"] == "hello" and rec["meta"] == {"content": {"x": 1}}


def test_nan_and_infinity_become_null():
    rec = parse_json_line(b'{"text": "t", "score": NaN, "m": {"v": [Infinity, 1]}}', SPEC, "f", 1)
    assert rec["meta"] == {"score": None, "m": {"v": [None, 1]}}
    json.dumps(rec, allow_nan=False)


def test_text_documents_and_blank_line_split():
    assert parse_text_document(b"hello\n", "d.txt", 1)["text"] == "hello\n"
    assert parse_text_document(b"\xff", "d.txt", 1).reason == "invalid_utf8"
    assert parse_text_document(b"  \n", "d.txt", 1).reason == "whitespace_text"
    docs = split_blank_line_documents(b"a\nb\n\n\n  \nc\r\n\nd")
    assert docs == [(1, b"a\nb"), (6, b"c"), (8, b"d")]
    assert split_blank_line_documents(b"\n\n") == []


@given(st.binary(max_size=300))
@settings(max_examples=400)
def test_any_bytes_give_a_record_or_a_quarantine_entry(raw):
    out = parse_json_line(raw.replace(b"\n", b" "), SPEC, "f", 1)
    if isinstance(out, Quarantined):
        json.dumps(out.to_json())
    else:
        assert isinstance(out["text"], str) and out["text"].strip()
        json.dumps(out, allow_nan=False)


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=10))
@settings(max_examples=300)
def test_any_json_value_gives_a_record_or_a_quarantine_entry(value):
    raw = json.dumps({"text": value, "id": value}).encode()
    out = parse_json_line(raw, SPEC, "f", 1)
    if isinstance(out, Quarantined):
        assert out.reason in BAD_RECORD_KINDS and out.line == 1
    else:  # only a non-blank string text with a usable (or absent) id makes a record
        assert isinstance(value, str) and value.strip() and out["text"] == value and out["id"] == value


def test_language_fields_stay_top_level_only_in_a_stage_output():
    staged = parse_json_line(b'{"id": "a", "text": "hi", "lang": "zh", "lang_score": 0.9, "script": "han", '
                             b'"origin": {"file": "x", "line": 3}, "meta": {"lang": "zh-TW"}}', SPEC, "f", 1)
    assert staged["lang"] == "zh" and staged["script"] == "han" and staged["meta"] == {"lang": "zh-TW"}
    raw = parse_json_line(b'{"id": "a", "text": "hi", "lang": "en"}', SPEC, "f", 1)
    assert "lang" not in raw and raw["meta"] == {"lang": "en"}


def test_a_leading_byte_order_mark_is_ignored():
    """Windows editors and exports start a file with a UTF-8 BOM; the first record must not be lost."""
    bom = b"\xef\xbb\xbf"
    out = parse_json_line(bom + '{"id": "a", "text": "第一行"}'.encode(), SPEC, "f.jsonl", 1)
    assert not isinstance(out, Quarantined) and out["id"] == "a" and out["text"] == "第一行"
    assert reason(bom) == "blank_line"
    assert reason(bom + b"  ") == "blank_line"
    assert reason(bom + b'{"text": "x"') == "invalid_json"  # still judged after the mark
    assert reason(b'{"text": "x"}' + bom) == "invalid_json"  # only a leading mark is ignored


def test_a_parquet_binary_text_column_is_read_as_utf8(tmp_path):
    """Spark and older writers store strings as BINARY; valid UTF-8 was quarantined as non_string_text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.beam_io import iter_units

    texts = ["二进制列里的中文文本".encode(), b"  \n", b"caf\xe9 latin-1"]
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": pa.array(texts, pa.binary())}), tmp_path / "b.parquet")
    out = list(iter_units(str(tmp_path / "b.parquet"), "parquet", "file", SPEC, "b.parquet"))
    assert out[0]["text"] == "二进制列里的中文文本" and out[0]["id"] == "a"
    assert [o.reason for o in out[1:]] == ["whitespace_text", "invalid_utf8"]


def test_a_json_array_file_is_named_in_the_quarantine_detail():
    """A `.json` file holding one array of records is one not_an_object entry; its detail says why."""
    out = parse_json_line(b'[{"text": "a"}, {"text": "b"}]', SPEC, "f.json", 1)
    assert out.reason == "not_an_object" and "list of 2 objects" in out.detail and "one object a line" in out.detail
    assert parse_json_line(b"[1, 2]", SPEC, "f.json", 1).detail == "got list"


def test_a_parquet_file_is_read_one_row_group_at_a_time(tmp_path, monkeypatch):
    """The first rows come out after reading the footer and the first row group, not the whole
    file (a multi-GB shard was read into memory before its first row); a corrupt later row group
    keeps every row before it and quarantines the rest as one unreadable_file entry."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines import progress
    from pipelines.beam_io import iter_units

    rng = random.Random(0)
    rows = 4000
    texts = ["".join(rng.choice("abcdefghij ") for _ in range(300)) for _ in range(rows)]  # ~1.2 MB, incompressible-ish
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(rows)], "text": texts}), path, row_group_size=500,
                   compression="none")
    size = path.stat().st_size
    seen = {"bytes": 0}
    monkeypatch.setattr(progress, "note", lambda nbytes=0, **_: seen.__setitem__("bytes", seen["bytes"] + nbytes))
    units = iter_units(str(path), "parquet", "file", SPEC, "big.parquet")
    first = next(units)
    assert first["id"] == "0" and seen["bytes"] < size / 3
    assert sum(1 for _ in units) == rows - 1
    # corrupt the seventh row group's text pages: the rows of the first six groups survive
    start = pq.ParquetFile(path).metadata.row_group(6).column(1).data_page_offset
    data = bytearray(path.read_bytes())
    data[start:start + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    out = list(iter_units(str(path), "parquet", "file", SPEC, "big.parquet"))
    good = [o for o in out if isinstance(o, dict)]
    assert [o["id"] for o in good] == [str(i) for i in range(3000)]
    assert [o.reason for o in out if not isinstance(o, dict)] == ["unreadable_file"]


def test_invalid_json_detail_reads_as_python_words_it():  # noqa: D103
    """json's message for an open string ends in "at"; the detail said "starting at at column 9"."""
    out = parse_json_line(b'{"text": "no end', SPEC, "f.jsonl", 1)
    assert out.reason == "invalid_json" and out.detail == "Unterminated string starting at: column 10"
    assert parse_json_line(b'{"text": }', SPEC, "f.jsonl", 1).detail == "Expecting value: column 10"
