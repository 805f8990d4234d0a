"""The clean stage as a Beam pipeline: read, quarantine, impute, normalize, filter, write.

    files ─► read units ─┬─► records ─► duplicate ids ─► impute meta ─► normalize + features
                         │                                              + fixed rules ─► outliers ─► kept
                         └─► bad units ─────────────┐                       │              │
                                                    ├─► policy: quarantine / drop / fail    └─► rejected
    every outcome ─► counts, checked against the units each file reported

Global statistics (imputation plan, thresholds, histograms) are combiners and side inputs.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterator, Optional

import apache_beam as beam

from llmdata import features as feats
from llmdata.junk import junk_reason, junk_scores
from llmdata.langid import identify
from llmdata.langid import load as load_langid
from llmdata.missing import apply_plan, build_plan, is_number, regression_targets
from llmdata.normalize import Normalizer, has_visible
from llmdata.outliers import check_grouped, from_json, group_keys, group_name, grouped_thresholds, to_json_safe, transform
from llmdata.quality import apply_rules
from llmdata.reasons import BadRecord, EvalOutcome, Outcome, QuarantineField as Q, RecordField as F
from llmdata.records import FieldSpec
from llmdata.scripts import dominant_script, script_counts
from pipelines import fs
from pipelines.runner import beam_pipeline
from pipelines.beam_io import (
    BAD,
    UNITS,
    DedupIds,
    Products,
    ReadFileUnits,
    count_outcomes,
    glob_base,
    origin_of,
    police_bad_records,
    quarantine_record,
    write_docs,
)
from pipelines.combiners import KnotSketchFn, MomentsFn, NormalEquationsFn, PresenceFn
from pipelines.config import CleanSection

WORK = "_work"
_STAT_QUANTILES = 101


# ---------------------------------------------------------------- record-level steps


class ScoreDocument(beam.DoFn):
    """Normalize the text; label its language (`lang`, `lang_score`), dominant script (`script`)
    and outlier group (`group`); compute features and junk scores; run the junk rules, then the
    enabled fixed rules. Every scored record, kept or rejected, carries these four fields."""

    REJECTED = Outcome.REJECTED
    NOTES = "rule_notes"  # one line per web rule that could not judge a document's language

    def __init__(self, cfg: dict):
        self.cfg = cfg

    def setup(self) -> None:
        section = CleanSection.model_validate(self.cfg)
        self.normalizer = Normalizer(section.normalize)
        self.quality = section.quality
        load_langid()

    def process(self, record: dict) -> Iterator:
        text = self.normalizer(record[F.TEXT])
        if not has_visible(text):
            yield beam.pvalue.TaggedOutput(
                BAD, quarantine_record(record, BadRecord.EMPTY_AFTER_NORMALIZATION, "no visible text left")
            )
            return
        junk = junk_scores(record[F.TEXT], text)
        reason = junk_reason(junk)
        lang, lang_score = identify(text)
        rule_scores: dict = {}
        if reason is None:
            notes: list[str] = []
            reason, rule_scores, text = apply_rules(text, self.quality, lang=lang, notes=notes)
            for note in notes:
                yield beam.pvalue.TaggedOutput(self.NOTES, note)
        out = dict(record)
        out[F.TEXT] = text
        out[F.LANG], out[F.LANG_SCORE] = lang, lang_score
        counts = script_counts(text)
        out[F.SCRIPT] = dominant_script(text, counts)
        out[F.GROUP] = group_name(counts, out[F.LANG])  # the outlier filter's group (llmdata.outliers)
        out[F.SCORES] = {**feats.document_features(text), **junk, **rule_scores}
        if reason:
            out[F.REASON] = reason
            yield beam.pvalue.TaggedOutput(self.REJECTED, out)
        else:
            yield out


class ApplyThresholds(beam.DoFn):
    """Judge a record by its group's thresholds; `threshold_group` names the group whose thresholds
    judged it (null: a group too small to have its own, not judged by this filter)."""

    REJECTED = Outcome.REJECTED

    def process(self, record: dict, thresholds: dict) -> Iterator:
        if not thresholds:
            yield record
            return
        reason, used = check_grouped(record[F.SCORES], record[F.GROUP], thresholds)
        record = {**record, F.THRESHOLD_GROUP: used}
        if reason:
            yield beam.pvalue.TaggedOutput(self.REJECTED, {**record, F.REASON: reason})
        else:
            yield record


# ---------------------------------------------------------------- global statistics


def imputation_plan(metas: beam.PCollection, section: CleanSection) -> beam.PCollection:
    """The imputation plan as a one-element PCollection, from whole-dataset combiners over the
    `meta` dicts of the records."""
    opts = section.missing
    presence = metas | "Presence" >> beam.CombineGlobally(PresenceFn())
    numbers = metas | "NumericValues" >> beam.FlatMap(lambda m: [(k, float(v)) for k, v in m.items() if is_number(v)])
    sums = numbers | "Sums" >> beam.CombinePerKey(lambda vs: _sum_count(vs))
    medians = (
        numbers
        | "MedianQuantiles" >> beam.ApproximateQuantiles.PerKey(3)
        | "Median" >> beam.MapTuple(lambda k, qs: (k, qs[1] if len(qs) > 1 else qs[0]))
    )
    targets = regression_targets(opts)

    def regression_rows(meta: dict) -> Iterator:
        for target, preds in targets.items():
            xs = [meta.get(p) for p in preds]
            if is_number(meta.get(target)) and all(is_number(x) for x in xs):
                yield target, ([float(x) for x in xs], float(meta[target]))

    fits = metas | "RegressionRows" >> beam.FlatMap(regression_rows) | "Fit" >> beam.CombinePerKey(NormalEquationsFn())
    orders = {name: rule.order for name, rule in opts.fields.items() if rule.rule == "interpolate"}

    def knot_points(meta: dict) -> Iterator:
        for target, order in orders.items():
            if is_number(meta.get(target)) and is_number(meta.get(order)):
                yield target, (float(meta[order]), float(meta[target]))

    knots = (
        metas
        | "KnotPoints" >> beam.FlatMap(knot_points)
        | "Knots" >> beam.CombinePerKey(KnotSketchFn(opts.interpolation_knots))
    )

    def make_plan(_: Any, presence: dict, sums: dict, medians: dict, fits: dict, knots: dict) -> dict:
        return build_plan(presence["total"], presence["fields"], sums, medians, fits, knots, opts)

    side = beam.pvalue
    return (
        metas.pipeline
        | "PlanSeed" >> beam.Create([None])
        | "Plan"
        >> beam.Map(
            make_plan,
            side.AsSingleton(presence),
            side.AsDict(sums),
            side.AsDict(medians),
            side.AsDict(fits),
            side.AsDict(knots),
        )
    )


def _sum_count(values: Any) -> tuple[float, int]:
    total, n = 0.0, 0
    for v in values:
        if isinstance(v, tuple):  # merging partial results
            total += v[0]
            n += v[1]
        else:
            total += v
            n += 1
    return total, n


def outlier_thresholds(scored: beam.PCollection, section: CleanSection) -> beam.PCollection:
    """Per-group, per-feature intervals from the data: moments and quantiles on each feature's
    judging scale, keyed by (group, feature) for the document's script group and "*"
    (llmdata.outliers.group_keys); `grouped_thresholds` keeps the groups large enough."""
    opts = section.outliers
    rules = opts.features

    def values(record: dict) -> Iterator:
        keys = group_keys(record[F.GROUP], opts.group_by)
        for name, rule in rules.items():
            if name in record[F.SCORES]:
                x = transform(name, record[F.SCORES][name], rule.log)
                for key in keys:
                    yield (key, name), x

    vals = scored | "ThresholdValues" >> beam.FlatMap(values)
    moments = vals | "ThresholdMoments" >> beam.CombinePerKey(MomentsFn())
    quants = vals | "ThresholdQuantiles" >> beam.ApproximateQuantiles.PerKey(opts.num_quantiles)

    def make(_: Any, moments: dict, quants: dict) -> dict:
        return grouped_thresholds(moments, quants, opts)

    return (
        scored.pipeline
        | "ThresholdSeed" >> beam.Create([None])
        | "Thresholds" >> beam.Map(make, beam.pvalue.AsDict(moments), beam.pvalue.AsDict(quants))
    )


def _feature_values(record: dict) -> list[tuple[str, float]]:
    return [(k, record[F.SCORES][k]) for k in feats.FEATURES if k in record[F.SCORES]]


def feature_summaries(populations: tuple[beam.PCollection, ...], phase: str) -> dict:
    """Per-feature values, moments and quantiles of one population of documents, given as one or
    more collections of records. Each record becomes its (feature, value) pairs where it is made,
    and only those pairs are flattened: a Flatten of whole records would be materialized, every
    text encoded and decoded once more, only for the scores to be read."""
    parts = tuple(docs | f"{phase}Values{i}" >> beam.FlatMap(_feature_values) for i, docs in enumerate(populations))
    vals = parts[0] if len(parts) == 1 else parts | f"{phase}Values" >> beam.Flatten()
    moments = vals | f"{phase}Moments" >> beam.CombinePerKey(MomentsFn())
    quants = vals | f"{phase}Quantiles" >> beam.ApproximateQuantiles.PerKey(_STAT_QUANTILES)
    return {"values": vals, "moments": moments, "quantiles": quants}


def histogram(vals: beam.PCollection, phase: str, edges: Any, bins: int) -> beam.PCollection:
    """Counts per (feature, bin) over the report's bins; edges arrive as a side input."""

    def to_bins(kv: tuple[str, float], edges: dict) -> Iterator:
        name, value = kv
        if name in edges:
            lo, hi, use_log = edges[name]
            x = _plot_scale(name, value) if use_log else value
            idx = 0 if hi <= lo else int((x - lo) / (hi - lo) * bins)
            yield (name, min(max(idx, 0), bins - 1))

    return vals | f"{phase}Bins" >> beam.FlatMap(to_bins, edges) | f"{phase}BinCount" >> beam.combiners.Count.PerElement()


def _plot_scale(name: str, value: float) -> float:
    """log10(x + offset): the log judging scale in base 10, which a reader can read off an axis."""
    _, offset = feats.feature_scale(name)
    return math.log10(max(value, 0.0) + offset)


def histogram_edges(before_quants: beam.PCollection, names: list[str]) -> beam.PCollection:
    """Bin ranges for the plots, from the before-filtering quantiles, on each feature's scale."""

    def make(_: Any, quants: dict) -> dict:
        edges = {}
        for name in names:
            qs = quants.get(name)
            if not qs:
                continue
            use_log, _ = feats.feature_scale(name)
            lo, hi = qs[0], qs[-1]
            if use_log:
                lo, hi = _plot_scale(name, lo), _plot_scale(name, hi)
            edges[name] = (lo, hi if hi > lo else lo + 1.0, use_log)
        return edges

    return (
        before_quants.pipeline
        | "EdgesSeed" >> beam.Create([None])
        | "Edges" >> beam.Map(make, beam.pvalue.AsDict(before_quants))
    )


# ---------------------------------------------------------------- the pipeline


def _write_parquet(pcoll: beam.PCollection, folder: str, num_shards: int) -> None:
    import pyarrow as pa

    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("lang", pa.string()),
         ("lang_score", pa.float64()), ("script", pa.string()), ("meta_json", pa.string()), ("scores_json", pa.string())]
    )

    def row(r: dict) -> dict:
        return {
            "id": r[F.ID],
            "text": r[F.TEXT],
            "source": r[F.SOURCE],
            "lang": r[F.LANG],
            "lang_score": r[F.LANG_SCORE],
            "script": r[F.SCRIPT],
            "meta_json": json.dumps(r[F.META], ensure_ascii=False),
            "scores_json": json.dumps(r[F.SCORES]),
        }

    _ = pcoll | "ParquetRows" >> beam.Map(row) | "ParquetWrite" >> beam.io.WriteToParquet(
        fs.join(folder, "part"), schema, file_name_suffix=".parquet", num_shards=num_shards
    )


def build_pipeline(
    p: beam.Pipeline,
    files: list[str],
    base: str,
    out: str,
    section: CleanSection,
    saved_thresholds: Optional[dict],
    labels_path: Optional[str],
) -> None:
    """Wire the clean stage into pipeline `p`; every product lands under `out`."""
    work = fs.join(out, WORK)
    spec = FieldSpec(text_field=section.text_field, id_field=section.id_field, id_scope=section.id_scope)
    read = (
        p
        | "Files" >> beam.Create(files)
        | "Read" >> beam.ParDo(ReadFileUnits(section.input_format, section.text_mode, spec, base)).with_outputs(
            BAD, UNITS, main="records"
        )
    )
    records = read.records
    bad_parts = [read[BAD]]

    # Duplicate ids: the records are grouped by id once (a keyed GroupByKey; its output is also what
    # spreads the records evenly over the workers), and the repeats are split off right where the
    # groups are read, in the stage that imputes and scores. The imputation plan reads the `meta` of
    # the first record of each id from a GroupByKey of (id, (origin, meta)) pairs, so it is ready
    # before that stage starts and the records are not buffered a second time to wait for it.
    if section.check_duplicate_ids:
        metas = (
            records
            | "IdMetas" >> beam.Map(lambda r: (r[F.ID], (origin_of(r), r[F.META])))
            | "GroupIdMetas" >> beam.GroupByKey()
            | "FirstMeta" >> beam.MapTuple(lambda _, seen: min(seen, key=lambda v: v[0])[1])  # origins are unique
        )
        records, dup_ids = records | "DuplicateIds" >> DedupIds()
        bad_parts.append(dup_ids)
    else:
        metas = records | "Metas" >> beam.Map(lambda r: r[F.META])
    plan = imputation_plan(metas, section)

    def impute(record: dict, plan: dict) -> dict:
        meta, imputed = apply_plan(record[F.META], plan)
        out = {**record, F.META: meta}
        if imputed:
            out[F.IMPUTED] = imputed
        return out

    records = records | "Impute" >> beam.Map(impute, beam.pvalue.AsSingleton(plan))
    scored = records | "Score" >> beam.ParDo(ScoreDocument(section.model_dump())).with_outputs(
        BAD, ScoreDocument.REJECTED, ScoreDocument.NOTES, main="passed"
    )
    bad_parts.append(scored[BAD])
    passed = scored.passed

    if saved_thresholds is not None:
        thresholds = p | "SavedThresholds" >> beam.Create([saved_thresholds])
    elif section.outliers.enabled:
        thresholds = outlier_thresholds(passed, section)
    else:
        thresholds = p | "NoThresholds" >> beam.Create([{}])
    filtered = passed | "Outliers" >> beam.ParDo(ApplyThresholds(), beam.pvalue.AsSingleton(thresholds)).with_outputs(
        ApplyThresholds.REJECTED, main="kept"
    )
    kept = filtered.kept
    rejected = (scored[ScoreDocument.REJECTED], filtered[ApplyThresholds.REJECTED]) | "AllRejected" >> beam.Flatten()
    bad = tuple(bad_parts) | "AllBad" >> beam.Flatten()
    quarantined, dropped = police_bad_records(bad, out, dict(section.bad_records.per_kind), section.bad_records.default)

    shards = section.output.num_shards
    write_docs(kept, fs.join(out, "kept"), "Kept", shards)
    write_docs(rejected, fs.join(out, "rejected"), "Rejected", shards)
    if section.output.parquet:
        _write_parquet(kept, fs.join(out, "kept_parquet"), shards)
    products = Products()
    products.add(thresholds | "ThresholdsSafe" >> beam.Map(to_json_safe), "thresholds")
    products.add(plan, "plan")
    products.add(scored[ScoreDocument.NOTES] | "CountRuleNotes" >> beam.combiners.Count.PerElement(), "rule_notes")

    # Accounting: units reported by each file, against every outcome.
    count_outcomes(products, read[UNITS], {
        Outcome.KEPT: (kept, None), Outcome.REJECTED: (rejected, F.REASON),
        Outcome.QUARANTINED: (quarantined, Q.REASON), Outcome.DROPPED: (dropped, Q.REASON),
    })

    # The funnel per language: every scored record, kept or rejected, by (lang, outcome).
    by_lang = (
        kept | "KeptLang" >> beam.Map(lambda r: (r[F.LANG], Outcome.KEPT)),
        rejected | "RejLang" >> beam.Map(lambda r: (r.get(F.LANG, "und"), r[F.REASON])),
    ) | "LangOutcomes" >> beam.Flatten() | "CountLang" >> beam.combiners.Count.PerElement()
    products.add(by_lang, "by_lang")

    def script_outcome(r: dict) -> tuple[tuple[str, str], int]:
        return (r.get(F.SCRIPT, "none"), Outcome.REJECTED if F.REASON in r else Outcome.KEPT), 1

    by_script = (  # (script, outcome) pairs flattened, not records (see feature_summaries)
        (kept | "KeptScript" >> beam.Map(script_outcome), rejected | "RejScript" >> beam.Map(script_outcome))
        | "ScriptOutcome" >> beam.Flatten()
        | "CountScript" >> beam.CombinePerKey(sum)
    )
    products.add(by_script, "by_script")

    # Feature statistics before and after filtering, and histogram counts for the report.
    summaries = {"before": feature_summaries((passed, scored[ScoreDocument.REJECTED]), "before"),
                 "after": feature_summaries((kept,), "after")}
    edges = histogram_edges(summaries["before"]["quantiles"], section.report.histograms)
    products.add(edges, "edges")
    for phase, summary in summaries.items():
        moments = summary["moments"] | f"{phase}MomentsOut" >> beam.MapTuple(
            lambda k, m: (k, [m.n, m.mean, m.std, m.lo, m.hi])
        )
        products.add(moments, f"moments_{phase}")
        products.add(summary["quantiles"], f"quantiles_{phase}")
        hist = histogram(summary["values"], phase, beam.pvalue.AsSingleton(edges), section.report.bins)
        products.add(hist, f"hist_{phase}")

    # A few examples per reason, chosen deterministically (smallest ids), for the report.
    n_examples = section.report.examples_per_reason
    if n_examples:
        examples = (
            rejected | "RejEx" >> beam.Map(lambda r: (r[F.REASON], (r[F.ID], r[F.TEXT][:240], r[F.ORIGIN]))),
            quarantined | "QuarEx" >> beam.Map(lambda q: (q[Q.REASON], (f"{q[Q.SOURCE]}:{q[Q.LINE]}", (q.get(Q.RAW) or q.get(Q.RAW_B64) or "")[:240], q[Q.DETAIL]))),
        ) | "Examples" >> beam.Flatten()
        top = examples | "ExampleTop" >> beam.combiners.Top.PerKey(n_examples, key=lambda e: e[0], reverse=True)
        products.add(top, "examples")
    else:
        products.declare("examples", "values")

    if labels_path:
        labels = (
            p
            | "LabelFiles" >> beam.io.ReadFromText(labels_path)
            | "LabelParse" >> beam.Map(json.loads)
            | "LabelKV" >> beam.Map(lambda d: (d["id"], d["label"]))
        )
        outcome_by_id = (
            kept | "KeptById" >> beam.Map(lambda r: (r[F.ID], EvalOutcome.KEPT)),
            rejected | "RejById" >> beam.Map(lambda r: (r[F.ID], EvalOutcome.REJECTED)),
        ) | "OutcomeById" >> beam.Flatten()

        def confusion(item: tuple[str, dict]) -> Iterator:
            _, grouped = item
            for label in grouped["label"]:
                outcome = grouped["outcome"][0] if grouped["outcome"] else EvalOutcome.QUARANTINED_OR_ABSENT
                yield (label, outcome)

        confusion_counts = (
            {"label": labels, "outcome": outcome_by_id}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "Confusion" >> beam.FlatMap(confusion)
            | "CountConfusion" >> beam.combiners.Count.PerElement()
        )
        products.add(confusion_counts, "eval")
    else:
        products.declare("eval", "values")
    products.write(work)


def run_pipeline(
    files: list[str],
    pattern: str,
    out: str,
    section: CleanSection,
    beam_args: list[str],
    saved_thresholds: Optional[dict] = None,
    labels_path: Optional[str] = None,
) -> None:
    with beam_pipeline(beam_args) as p:
        build_pipeline(p, files, glob_base(pattern), out, section, saved_thresholds, labels_path)


def load_thresholds(path: str) -> dict:
    return from_json(fs.read_json(path))
