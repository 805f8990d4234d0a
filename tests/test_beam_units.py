"""Beam DoFns under TestPipeline, and the accounting check of the stage contract."""
import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from llmdata.records import FieldSpec
from pipelines.beam_io import BAD, UNITS, ReadFileUnits, glob_base, relative_source
from pipelines.beam_io import ApplyPolicy, SplitDuplicateIds, duplicate_id_entry, is_first_of_id, repeated_ids
from pipelines.manifest import AccountingError, check_accounting


def test_reader_emits_records_bad_units_and_counts(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "1", "text": "one"}\n{"text": \n\n{"id": "2", "text": "two"}\n')
    with TestPipeline() as p:
        out = p | beam.Create([str(path)]) | beam.ParDo(ReadFileUnits("auto", "file", FieldSpec(), str(tmp_path))).with_outputs(BAD, UNITS, main="records")
        assert_that(out.records | "ids" >> beam.Map(lambda r: r["id"]), equal_to(["1", "2"]), label="records")
        assert_that(out[BAD] | "reasons" >> beam.Map(lambda q: (q["reason"], q["line"])), equal_to([("invalid_json", 2), ("blank_line", 3)]), label="bad")
        assert_that(out[UNITS], equal_to([("a.jsonl", 4)]), label="units")


def test_duplicate_ids_keep_the_first_by_position():
    recs = [
        {"id": "x", "origin": {"file": "b", "line": 1}},
        {"id": "x", "origin": {"file": "a", "line": 9}},
        {"id": "x", "origin": {"file": "a", "line": 2}, "text": "first"},
    ]
    with TestPipeline() as p:
        out = p | beam.Create([("x", recs)]) | beam.ParDo(SplitDuplicateIds()).with_outputs(BAD, main="unique")
        assert_that(out.unique | beam.Map(lambda r: r["origin"]["line"]), equal_to([2]), label="kept")
        assert_that(out[BAD] | beam.Map(lambda q: (q["reason"], q["source"], q["line"])), equal_to([("duplicate_id", "a", 9), ("duplicate_id", "b", 1)]), label="dups")


def test_repeated_ids_name_the_first_origin_of_each_repeated_id():
    """The side input of the dedup stage's exact groups: only ids carried by several records, each
    with its first (file, line); the same choice and the same quarantine entry as SplitDuplicateIds."""
    recs = [
        {"id": "x", "origin": {"file": "b", "line": 1}},
        {"id": "y", "origin": {"file": "b", "line": 2}},
        {"id": "x", "origin": {"file": "a", "line": 9}},
        {"id": "x", "origin": {"file": "a", "line": 2}},
    ]
    with TestPipeline() as p:
        assert_that(p | beam.Create(recs) | repeated_ids(), equal_to([("x", ("a", 2))]))
    firsts = {"x": ("a", 2)}
    assert [is_first_of_id(r["id"], (r["origin"]["file"], r["origin"]["line"]), firsts) for r in recs] == [False, True, False, True]
    entry = duplicate_id_entry(recs[0], firsts["x"])
    assert (entry["reason"], entry["source"], entry["line"], entry["detail"]) == ("duplicate_id", "b", 1, "id 'x' first seen at a:2")


def test_policy_routes_quarantine_and_drop():
    bad = [{"reason": "blank_line", "source": "f", "line": 1, "detail": ""}, {"reason": "invalid_json", "source": "f", "line": 2, "detail": ""}]
    with TestPipeline() as p:
        out = p | beam.Create(bad) | beam.ParDo(ApplyPolicy({"blank_line": "drop"}, "quarantine")).with_outputs(ApplyPolicy.DROPPED, main="q")
        assert_that(out.q | beam.Map(lambda q: q["reason"]), equal_to(["invalid_json"]), label="q")
        assert_that(out[ApplyPolicy.DROPPED] | beam.Map(lambda q: q["reason"]), equal_to(["blank_line"]), label="d")


def test_sources_are_relative_to_the_glob():
    assert glob_base("/data/in/*/x-*.jsonl") == "/data/in"
    assert glob_base("gs://b/c/*.jsonl") == "gs://b/c"
    assert glob_base("/data/file.jsonl") == "/data"
    assert relative_source("/data/in/a/x-1.jsonl", "/data/in") == "a/x-1.jsonl"


def test_accounting_refuses_counts_that_do_not_add_up():
    ok = {"input": 5, "kept": 2, "rejected": {"total": 1, "by_reason": {"r": 1}}, "quarantined": {"total": 2, "by_reason": {"a": 1, "b": 1}}, "dropped": {"total": 0, "by_reason": {}}}
    check_accounting(ok)
    with pytest.raises(AccountingError, match="input 6"):
        check_accounting({**ok, "input": 6})
    with pytest.raises(AccountingError, match="sum of reasons"):
        check_accounting({**ok, "quarantined": {"total": 2, "by_reason": {"a": 1}}})
