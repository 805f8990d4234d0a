"""llmdata.reasons: every reason a data stage writes is one the module names, and readers refuse
what it does not name. The stages run for real (CLI, DirectRunner) on a small demo corpus plus
hostile lines; the source scan keeps literal reasons from coming back outside the module."""
import ast
import gzip
import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmdata import reasons as R
from llmdata.chat import BadRow, read_objects
from llmdata.sample_data import bad_lines
from pipelines.cli import main
from pipelines.stage import SideProducts, outcome_counts
from tests.conftest import read_jsonl_gz

ROOT = Path(__file__).resolve().parent.parent
GROUPS = [obj for obj in vars(R).values() if isinstance(obj, type) and issubclass(obj, R.Names) and obj is not R.Names]


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _hostile_file(path: Path) -> None:
    """Lines that hit most quarantine kinds, and one document left with no visible text."""
    lines = [
        b'{"id": "cut", "text": "A record cut',
        b"\xff\xfe not utf-8",
        b'{"id": "sur", "text": "lone \\ud800 surrogate"}',
        b"[1, 2, 3]",
        b'{"id": "no-text"}',
        b'{"id": "null-text", "text": null}',
        b'{"id": "num-text", "text": 42}',
        b'{"id": "empty", "text": ""}',
        b'{"id": "ws", "text": "   "}',
        b'{"id": true, "text": "a boolean id"}',
        b"",
        '{"id": "invisible", "text": "\u200b\u200b\u2063"}'.encode(),
        b'{"id": "twice", "text": "The first record with this id is kept."}',
        b'{"id": "twice", "text": "The second one with the same id is quarantined."}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.fixture(scope="module")
def rules_run(small_corpus, tmp_path_factory) -> Path:
    """The clean stage with every fixed rule set on, the outlier filter, and hostile lines."""
    folder, _ = small_corpus
    inputs = tmp_path_factory.mktemp("reasons_in")
    for shard in folder.glob("shard-*.jsonl.gz"):
        (inputs / shard.name).write_bytes(shard.read_bytes())
    with gzip.open(inputs / "shard-hostile.jsonl.gz", "wb") as f:
        _hostile_file(Path(str(inputs / "hostile.jsonl")))
        f.write((inputs / "hostile.jsonl").read_bytes())
    (inputs / "hostile.jsonl").unlink()
    out = tmp_path_factory.mktemp("reasons") / "clean"
    sets = [f"clean.quality.{name}.enabled=true" for name in R.RuleSet.values()]
    args = ["clean", "--config", "configs/pipeline.yaml", "--input", str(inputs / "shard-*.jsonl.gz"), "--output", str(out),
            "--set", f"clean.eval_labels={folder / 'labels.jsonl'}", "--set", "clean.outliers.min_group_docs=10",
            "--set", "clean.bad_records.per_kind={}"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return out


@pytest.mark.parametrize("run", ["rules_run", "clean_run"])
def test_every_reason_the_clean_stage_writes_is_named(run, request):
    """With every web rule set on (rules_run) and with the demo config (clean_run: junk rules and
    the outlier filter), each quarantine entry, rejected record and counted reason is named."""
    out = request.getfixturevalue(run)
    quarantined = read_jsonl_gz(out / "quarantine")
    rejected = read_jsonl_gz(out / "rejected")
    assert quarantined and rejected
    for q in quarantined:
        assert R.parse_reason(q[R.QuarantineField.REASON]).family == "bad_record", q
        assert set(q) <= set(R.QuarantineField.values())
    families = {R.parse_reason(r[R.RecordField.REASON]).family for r in rejected}
    # Every rule set rejected something with the rules on; junk and outliers did with the demo config.
    assert families >= ({"junk", *R.RuleSet.values()} if run == "rules_run" else {"junk", R.OUTLIER}), families
    for r in rejected:
        assert set(r) <= set(R.RecordField.values()), set(r) - set(R.RecordField.values())
    counts = manifest(out)["counts"]
    assert set(counts) == {"input", *(o for o in R.Outcome.values() if o in counts)}
    for outcome in (R.Outcome.REJECTED, R.Outcome.QUARANTINED, R.Outcome.DROPPED):
        for reason in counts[outcome]["by_reason"]:
            R.parse_reason(reason)
    # The hostile file reached these kinds; none is counted under a name the module lacks.
    seen = set(counts[R.Outcome.QUARANTINED]["by_reason"]) | set(counts[R.Outcome.DROPPED]["by_reason"])
    assert run == "clean_run" or seen >= {R.BadRecord.INVALID_JSON, R.BadRecord.INVALID_UTF8, R.BadRecord.INVALID_UNICODE,
                    R.BadRecord.NOT_AN_OBJECT, R.BadRecord.MISSING_TEXT, R.BadRecord.NULL_TEXT,
                    R.BadRecord.NON_STRING_TEXT, R.BadRecord.EMPTY_TEXT, R.BadRecord.WHITESPACE_TEXT,
                    R.BadRecord.INVALID_ID, R.BadRecord.BLANK_LINE, R.BadRecord.DUPLICATE_ID,
                    R.BadRecord.EMPTY_AFTER_NORMALIZATION}, seen
    stats = json.loads((out / "stats.json").read_text())
    for row in stats["by_language"].values():
        for reason in row["by_reason"]:
            R.parse_reason(reason)
    for row in stats["evaluation"]["by_label"].values():
        assert set(row) <= set(R.EvalOutcome.values())


def test_every_dup_kind_the_dedup_stage_writes_is_named(tmp_path):
    """Exact, near and line-emptied duplicates, each removed under a DupKind."""
    rng = random.Random(3)
    words = [f"w{rng.randrange(5000)}" for _ in range(400)]
    base = " ".join(words[:120])
    near = " ".join(words[:119] + ["changed"])
    line_a = "This shared line is long enough for line-level dedup to consider it."
    line_b = "And a second shared line, also long enough to be counted as repeated."
    docs = [
        {"id": "a-base", "text": base}, {"id": "b-exact", "text": base}, {"id": "c-near", "text": near},
        {"id": "d-owner", "text": f"{line_a}\n{line_b}\nOwn words of the owner document."},
        {"id": "e-emptied", "text": f"{line_b}\n{line_a}"},
        {"id": "f-other", "text": " ".join(words[200:320])},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "dedup"
    assert main(["dedup", "--config", "configs/pipeline.yaml", "--input", str(src), "--output", str(out),
                 "--set", "dedup.line_dedup=true", "--set", "dedup.num_shards=1"]) == 0
    removed = read_jsonl_gz(out / "removed")
    kinds = {r["id"]: r[R.RecordField.DUP_KIND] for r in removed}
    # Which of the three copies is kept is dedup's preference; one is removed exactly, one as near.
    assert kinds.pop("e-emptied") == R.DupKind.LINES
    assert sorted(kinds.values()) == [R.DupKind.EXACT, R.DupKind.NEAR] and set(kinds) < {"a-base", "b-exact", "c-near"}
    by_reason = manifest(out)["counts"][R.Outcome.REMOVED]["by_reason"]
    assert by_reason == {R.DupKind.EXACT: 1, R.DupKind.LINES: 1, R.DupKind.NEAR: 1}
    report = (out / "report.md").read_text()
    assert "| removed as exact duplicates | 1 |" in report and "| removed by line dedup (no text left) | 1 |" in report


def test_outcome_counts_refuse_unread_outcomes_and_unknown_reasons():
    kinds = {"counts": "pairs", "input": "total"}

    def products(pairs):
        return SideProducts(kinds, {"counts": [[list(k), n] for k, n in pairs], "input": [sum(n for _, n in pairs)]})

    good = products([(("kept", "kept"), 3), (("rejected", "junk:mojibake"), 1)])
    assert outcome_counts(good, ("kept",), ("rejected",))["rejected"] == {"total": 1, "by_reason": {"junk:mojibake": 1}}
    # An outcome the stage does not read would vanish from the manifest: refused, not read as zero.
    with pytest.raises(R.UnknownReasonError, match="'rejected'"):
        outcome_counts(good, ("kept",), ())
    with pytest.raises(R.UnknownReasonError, match="junk:mojibak'"):
        outcome_counts(products([(("rejected", "junk:mojibak"), 1)]), (), ("rejected",))
    with pytest.raises(R.UnknownReasonError):
        outcome_counts(good, ("kept", "kepts"), ("rejected",))


def test_demo_generator_expects_only_named_quarantine_kinds():
    for _, expected in bad_lines(random.Random(0), ["a", "b"]):
        R.BadRecord.check(expected)


def test_builders_round_trip_and_refuse_unknown_parts():
    assert R.parse_reason(R.rule_reason(R.RuleSet.GOPHER_QUALITY, R.GopherQualityCheck.MIN_WORDS)) == \
        R.Reason("gopher_quality", "min_words")
    assert R.parse_reason(R.rule_reason(R.RuleSet.GOPHER_REPETITION, R.ngram_check(R.NgramCheck.DUP, 10))) == \
        R.Reason("gopher_repetition", "dup_10gram")
    assert R.parse_reason(R.outlier_reason("n_chars", R.OutlierSide.HIGH)) == R.Reason("outlier", "n_chars", "high")
    for bad in [("c4", "top_2gram"), ("gopher_quality", "min_word"), ("gopher", "min_words")]:
        with pytest.raises(R.UnknownReasonError):
            R.rule_reason(*bad)
    for bad in ["outlier:n_chars:mid", "outlier::low", "junk:gibberish", "exact ", "c4:", "", "kept"]:
        with pytest.raises(R.UnknownReasonError):
            R.parse_reason(bad)
    with pytest.raises(R.UnknownReasonError):
        R.ngram_check(R.NgramCheck.TOP, 0)


@given(st.text(max_size=40))
def test_parse_reason_names_or_refuses_any_text(text):
    """Any text either parses into a named family or raises UnknownReasonError; never anything else."""
    try:
        reason = R.parse_reason(text)
    except R.UnknownReasonError:
        return
    assert reason.family in {"bad_record", "junk", "dup", R.OUTLIER, *R.RuleSet.values()}


def test_bad_row_reasons_keep_their_text(tmp_path):
    """The alignment readers' BadRow reasons are built by reasons.bad_row_reason, unchanged in wording
    (training/stage.py `bad_row_kind` counts the JSON, UTF-8 and Unicode ones by their kind)."""
    from training.stage import bad_row_kind

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"messages": [}\n\xff\xfe\n[1]\n{"prompt": "p", "completion": "c"}\n{"p": "\\udc00"}\n')
    bad = [item for item in read_objects(str(path)) if isinstance(item, BadRow)]
    assert [b.reason for b in bad] == ["invalid JSON: Expecting value: column 15", "invalid UTF-8 at byte 0",
                                       "a JSON list, not an object",
                                       "invalid Unicode: unpaired surrogate escape (\\ud800-\\udfff)"]
    assert [b.line for b in bad] == [1, 2, 3, 5]
    assert [bad_row_kind(b.reason) for b in bad] == ["invalid JSON", "invalid UTF-8", "a JSON list, not an object",
                                                     "invalid Unicode"]


def test_every_name_has_a_docstring_and_groups_hold_distinct_values():
    tree = ast.parse((ROOT / "llmdata" / "reasons.py").read_text())
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        body = cls.body
        for i, node in enumerate(body):
            if isinstance(node, ast.Assign) and node.targets[0].id.isupper():
                doc = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and doc.value.value.strip(), \
                    f"{cls.name}.{node.targets[0].id} has no docstring"
    for group in GROUPS:
        assert len(set(group.values())) == len(group.values()), group
        assert all(type(v) is str for v in group.values()), group  # plain str: JSON and Beam's coder unchanged


def _literals(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):  # an f-string that builds "<family>:..." by hand
            head = node.values[0] if node.values else None
            if isinstance(head, ast.Constant) and str(head.value).split(":")[0] in {"junk", R.OUTLIER, *R.RuleSet.values()} \
                    and ":" in str(head.value):
                out.append((node.lineno, str(head.value)))
    return out


def test_no_stage_writes_a_reason_as_a_literal():
    """Reasons are made only in llmdata/reasons.py: a literal reason elsewhere in the stages' code
    (a quarantine kind, a junk/rule/outlier reason, an f-string building one) fails here."""
    named = set(R.BadRecord.values()) | set(R.Junk.values())
    # sample_data: the generator's expected kinds (checked above); config.py: the default policy
    # {"blank_line": "drop"}, validated against BAD_RECORD_KINDS where it is read.
    skip_files = ("reasons.py", "sample_data.py", "config.py")
    not_reasons = {
        ("beam_io.py", "blank_line"),  # text_mode: blank-line separated documents, not the kind
        ("cli.py", "junk:"),  # the demo generator's label prefix (junk:gibberish...), not a reason
    }
    files = [p for p in sorted((ROOT / "llmdata").glob("*.py")) + sorted((ROOT / "pipelines").glob("*.py"))
             if p.name not in skip_files]
    found = []
    for path in files:
        for line, text in _literals(path):
            family = text.split(":")[0]
            prefix_built = ":" in text and family in {"junk", R.OUTLIER, *R.RuleSet.values()}
            if (text in named or prefix_built) and (path.name, text) not in not_reasons:
                found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "reasons written as literals (use llmdata.reasons):\n" + "\n".join(found)
