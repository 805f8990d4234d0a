"""Running the clean stage as a stage: resolve inputs, skip when finished, run the pipeline,
assemble counts and statistics, write the report, check the accounting, write the manifest."""
from __future__ import annotations

import re
import time
from typing import Optional

from llmdata.features import FEATURES
from llmdata.junk import junk_scores
from llmdata.quality import RULES

from llmdata.outliers import to_json_safe
from llmdata.reasons import BadRecord, EvalOutcome, Outcome, UnknownReasonError, parse_reason
from pipelines import fs
from pipelines.clean import WORK, load_thresholds, run_pipeline
from pipelines.config import CleanSection
from pipelines.manifest import input_fingerprint, write_manifest
from pipelines.report import write_clean_report
from pipelines.stage import SideProducts, StageInputError, begin, outcome_counts, plan_stage, publish, read_products

#: share of the input quarantined as duplicate_id past which the stage suggests `id_scope: file`
DUPLICATE_ID_HINT = 0.1


def _feature_stats(products: SideProducts, phase: str) -> dict:
    out: dict = {}
    for name, (n, mean, std, lo, hi) in products.values(f"moments_{phase}"):
        out[name] = {"n": n, "mean": mean, "std": std, "min": lo, "max": hi}
    for name, qs in products.values(f"quantiles_{phase}"):
        last = len(qs) - 1
        out.setdefault(name, {}).update({f"p{p:02d}": qs[round(p / 100 * last)] for p in (1, 5, 25, 50, 75, 95, 99)})
    return dict(sorted(out.items()))


def _histograms(products: SideProducts) -> dict:
    hist: dict = {"edges": products.one("edges", default={})}
    for phase in ("before", "after"):
        counts: dict = {}
        for (name, idx), n in products.values(f"hist_{phase}"):
            counts.setdefault(name, {})[idx] = n
        hist[phase] = counts
    return hist


def _evaluation(products: SideProducts) -> Optional[dict]:
    rows = products.values("eval")
    if not rows:
        return None
    table: dict = {}
    for (label, outcome), n in rows:
        table.setdefault(label, {})[EvalOutcome.check(outcome)] = n
    outcomes = EvalOutcome.values()
    good = {o: sum(t.get(o, 0) for lab, t in table.items() if lab.startswith("good")) for o in outcomes}
    junk = {o: sum(t.get(o, 0) for lab, t in table.items() if lab.startswith("junk")) for o in outcomes}
    good_total = sum(good.values())
    junk_total = sum(junk.values())
    return {
        "by_label": dict(sorted(table.items())),
        "good_kept": good[EvalOutcome.KEPT] / good_total if good_total else None,
        "junk_removed": (junk_total - junk[EvalOutcome.KEPT]) / junk_total if junk_total else None,
        "good_total": good_total,
        "junk_total": junk_total,
    }


def _by_language(products: SideProducts) -> dict:
    """{lang: {"input", "kept", "rejected", "by_reason": {reason: n}}} over every scored record
    (quarantined and dropped records never reach the language identifier). An outcome that is
    neither kept nor a reason `llmdata.reasons` names raises UnknownReasonError."""
    table: dict = {}
    for (lang, outcome), n in products.values("by_lang"):
        row = table.setdefault(lang, {"input": 0, Outcome.KEPT: 0, Outcome.REJECTED: 0, "by_reason": {}})
        row["input"] += n
        if outcome == Outcome.KEPT:
            row[Outcome.KEPT] += n
        else:
            parse_reason(outcome)
            row[Outcome.REJECTED] += n
            row["by_reason"][outcome] = row["by_reason"].get(outcome, 0) + n
    for row in table.values():
        row["by_reason"] = dict(sorted(row["by_reason"].items(), key=lambda kv: -kv[1]))
    return dict(sorted(table.items(), key=lambda kv: (-kv[1]["input"], kv[0])))


def _by_script(products: SideProducts) -> dict:
    """{script: {"input", "kept", "rejected"}} over every scored record; an outcome other than
    kept or rejected raises UnknownReasonError."""
    table: dict = {}
    for (script, outcome), n in products.values("by_script"):
        row = table.setdefault(script, {"input": 0, Outcome.KEPT: 0, Outcome.REJECTED: 0})
        row["input"] += n
        if outcome not in (Outcome.KEPT, Outcome.REJECTED):
            raise UnknownReasonError(f"by_script: unknown outcome {outcome!r}")
        row[outcome] += n
    return dict(sorted(table.items(), key=lambda kv: (-kv[1]["input"], kv[0])))


#: quarantine or drop reasons that say the text field names nothing holding text
TEXT_FIELD_REASONS = (BadRecord.MISSING_TEXT, BadRecord.NULL_TEXT, BadRecord.NON_STRING_TEXT)


def _check_text_field(counts: dict, text_field: str, quarantine: str) -> None:
    """Raise StageInputError when no record had text and records failed for the text field itself
    (missing, null or not a string: a typo, the id, a parent object), whether they were quarantined
    or dropped: publishing would replace a good earlier output with one without documents."""
    if counts[Outcome.KEPT] + counts[Outcome.REJECTED]["total"]:
        return
    bad = {}
    for outcome in (Outcome.QUARANTINED, Outcome.DROPPED):
        for reason, n in counts[outcome]["by_reason"].items():
            if reason in TEXT_FIELD_REASONS:
                bad[reason] = bad.get(reason, 0) + n
    if not bad:
        return
    found = ", ".join(f"{n} {reason}" for reason, n in sorted(bad.items()))
    where = f", in {quarantine}" if counts[Outcome.QUARANTINED]["total"] else ""
    raise StageInputError(
        f"no record has the text field {text_field!r} holding a string ({found} of {counts['input']} records{where}); set "
        "clean.text_field to the field that holds the text")


def score_names() -> tuple[set[str], list[re.Pattern]]:
    """The scores a document can carry, which `clean.outliers.features` may judge: the document
    features (llmdata.features.FEATURES), the junk rules' scores and the web rules' (a "{n}" in
    a rule's score name stands for any n-gram size)."""
    names = set(FEATURES) | set(junk_scores("", ""))
    patterns = [re.compile(re.escape(name).replace(re.escape("{n}"), r"\d+")) for spec in RULES.values()
                for name in spec.scores]
    return names, patterns


def _check_feature_names(section: CleanSection) -> None:
    """Raise StageInputError for a judged feature no document's scores can hold (a typo): it would
    get no interval and judge nothing, without a word."""
    names, patterns = score_names()
    for name in section.outliers.features:
        if name not in names and not any(p.fullmatch(name) for p in patterns):
            raise StageInputError(
                f"clean.outliers.features: unknown feature {name!r} (document features: {', '.join(FEATURES)}; "
                "or a junk or web-rule score)")


def run_clean(
    section: CleanSection,
    pattern: str,
    out: str,
    beam_args: list[str],
    force: bool = False,
    thresholds_file: Optional[str] = None,
    log=print,
) -> dict:
    """Run (or skip) the clean stage from the files matching `pattern` into folder `out`."""
    _check_feature_names(section)
    thresholds_file = thresholds_file or section.outliers.thresholds_file
    saved = None
    if thresholds_file:
        if not fs.exists(thresholds_file):
            raise StageInputError(f"thresholds file not found: {thresholds_file}")
        try:
            saved = load_thresholds(thresholds_file)
        except (ValueError, KeyError, AttributeError) as err:
            raise StageInputError(f"thresholds file {thresholds_file}: {err}") from None
    labels = section.eval_labels if section.eval_labels and fs.match(section.eval_labels) else None
    config = section.model_dump(mode="json")
    extra = {}
    if saved is not None:
        extra["thresholds"] = to_json_safe(saved)
    if labels:
        extra["labels"] = input_fingerprint(labels)
    plan = plan_stage("clean", config, pattern, out, force, extra, log=log)
    if plan.up_to_date:
        return plan.up_to_date

    out = begin(out, plan, "clean", log)  # a fresh <out>.partial; the previous output stays until publish
    started = time.time()
    run_pipeline(plan.files, pattern, out, section, beam_args, saved, labels)
    pipeline_s = time.time() - started

    work = fs.join(out, WORK)
    products = read_products(work)
    counts = outcome_counts(products, (Outcome.KEPT,), (Outcome.REJECTED, Outcome.QUARANTINED, Outcome.DROPPED))
    quarantined = counts[Outcome.QUARANTINED]["by_reason"]
    _check_text_field(counts, section.text_field, fs.join(out, "quarantine"))
    thresholds = products.one("thresholds")
    fs.write_json(fs.join(out, "thresholds.json"), thresholds)
    imputation = products.one("plan")
    examples = {reason: items for reason, items in products.values("examples")}
    stats = {
        "counts": counts,
        "imputation": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("knots")} for k, v in imputation.items()},
        "features_before": _feature_stats(products, "before"),
        "features_after": _feature_stats(products, "after"),
        "evaluation": _evaluation(products),
        "by_language": _by_language(products),
        "by_script": _by_script(products),
        "thresholds_source": thresholds_file or "computed from this input",
        "rules_skipped": dict(sorted(products.values("rule_notes"))),
    }
    fs.write_json(fs.join(out, "stats.json"), stats)
    write_clean_report(out, stats, thresholds, examples, _histograms(products), section)
    fs.remove_tree(work)
    timings = {"pipeline_s": round(pipeline_s, 2), "total_s": round(time.time() - started, 2)}
    outputs = {
        "kept": "kept/part-*.jsonl.gz",
        "rejected": "rejected/part-*.jsonl.gz",
        "quarantine": "quarantine/part-*.jsonl.gz",
        "thresholds": "thresholds.json",
        "stats": "stats.json",
        "report": "report.md",
    }
    if section.output.parquet:
        outputs["kept_parquet"] = "kept_parquet/part-*.parquet"
    manifest = write_manifest(out, "clean", plan.fingerprint, config, plan.inputs, counts, timings, outputs)
    out = publish(out)
    q = counts[Outcome.QUARANTINED]["total"] + counts[Outcome.DROPPED]["total"]
    log(
        f"clean: {counts['input']} in, {counts[Outcome.KEPT]} kept, {counts[Outcome.REJECTED]['total']} rejected, "
        f"{q} quarantined/dropped in {timings['total_s']:.1f}s; report: {fs.join(out, 'report.md')}"
    )
    repeated = sum(counts[o]["by_reason"].get(BadRecord.DUPLICATE_ID, 0) for o in (Outcome.QUARANTINED, Outcome.DROPPED))
    if section.id_scope == "dataset" and repeated and repeated >= DUPLICATE_ID_HINT * counts["input"]:
        how = "quarantined" if quarantined.get(BadRecord.DUPLICATE_ID) else "dropped"
        log(f"clean: {repeated} records ({repeated / counts['input']:.0%}) {how} as duplicate_id; if your files "
            "number their records separately (ids from 0 in every shard), rerun with --set clean.id_scope=file")
    return manifest
