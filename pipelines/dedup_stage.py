"""Running the dedup stage: plan, run the pipeline, check convergence and accounting, report."""
from __future__ import annotations

import json
import time
from typing import Callable, Optional

from llmdata.dedup import candidate_probability
from llmdata.reasons import DupKind, Outcome, RecordField as F, ShingleUnit
from pipelines import fs
from pipelines.config import DedupSection
from pipelines.dedup import WORK, run_pipeline, summary_products
from pipelines.manifest import input_fingerprint, write_manifest
from pipelines.stage import StageInputError, begin, outcome_counts, plan_stage, publish, read_products


def planted_recall(out: str, labels_path: str, section: DedupSection) -> dict:
    """Of the planted duplicates (labels with `duplicate_of`) whose true Jaccard with their
    original reaches the threshold, how many ended in their original's cluster. Near copies where
    either document has fewer shingles than near dedup needs (`min_shingles_needed`) are counted
    apart (`near_too_short`): by design they are matched only exactly."""
    from pipelines.dedup import document_shingles, exact_jaccard

    planted = {}
    for line in fs.read_text(labels_path).splitlines():
        lab = json.loads(line)
        if lab.get("duplicate_of"):
            planted[lab["id"]] = (lab["duplicate_of"], lab["label"])
    wanted = set(planted) | {orig for orig, _ in planted.values()}
    seen = {}
    for folder in ("kept", "removed"):
        for path, _, _ in fs.match(fs.join(out, folder, "part-*.jsonl.gz")):
            for rec in fs.iter_json_lines(path):
                if rec[F.ID] in wanted:
                    seen[rec[F.ID]] = (rec.get(F.CLUSTER), rec[F.TEXT])
    result = {}
    for doc, (original, label) in sorted(planted.items()):
        if doc not in seen or original not in seen:
            continue  # filtered out by the clean stage
        kind = "exact" if label.endswith("exact_dup") else "near"
        (ha, _, na), (hb, _, nb) = document_shingles(seen[doc][1], section), document_shingles(seen[original][1], section)
        sim = exact_jaccard(ha, hb)
        found = seen[doc][0] is not None and seen[doc][0] == seen[original][0]
        short = ha.size < section.min_shingles_needed(na) or hb.size < section.min_shingles_needed(nb)
        band = "too_short" if kind == "near" and short else "above_threshold" if sim >= section.threshold else "below_threshold"
        entry = result.setdefault(f"{kind}_{band}", {"found": 0, "planted": 0})
        entry["planted"] += 1
        entry["found"] += int(found)
    for entry in result.values():
        entry["recall"] = entry["found"] / entry["planted"]
    return dict(sorted(result.items()))


def _plots(out: str, bands: int, rows: int, threshold: float, summary: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fs.makedirs(fs.join(out, "plots"))
    written = []
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    xs = [i / 200 for i in range(201)]
    ax.plot(xs, [candidate_probability(x, bands, rows) for x in xs], label=f"{bands} bands x {rows} rows")
    ax.axvline(threshold, color="grey", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("Jaccard similarity")
    ax.set_ylabel("P(candidate)")
    ax.legend()
    ax.set_title("LSH S-curve")
    fig.tight_layout()
    fig.savefig(fs.join(out, "plots", "s_curve.png"))
    plt.close(fig)
    written.append("plots/s_curve.png")
    sizes = summary["cluster_size_histogram"]
    if sizes:
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        ax.bar([int(k) for k in sizes], list(sizes.values()))
        ax.set_xlabel("cluster size (documents)")
        ax.set_ylabel("clusters")
        ax.set_yscale("log")
        ax.set_title("Duplicate clusters")
        fig.tight_layout()
        fig.savefig(fs.join(out, "plots", "cluster_sizes.png"))
        plt.close(fig)
        written.append("plots/cluster_sizes.png")
    return written


def removed_by_kind(counts: dict) -> dict[str, int]:
    """{dup kind: records removed} for every `DupKind` (0 where none was), from the manifest's
    counts; a kind `llmdata.reasons.DupKind` does not name raises UnknownReasonError."""
    removed = counts[Outcome.REMOVED]["by_reason"]
    for kind in removed:
        DupKind.check(kind)
    return {kind: removed.get(kind, 0) for kind in DupKind.values()}


def write_report(out: str, counts: dict, summary: dict, bands: int, rows: int, section: DedupSection,
                 evaluation: Optional[dict], examples: dict) -> None:
    removed = removed_by_kind(counts)
    lines = [
        "# Dedup stage report",
        "",
        "| records | count |",
        "|---|---:|",
        f"| input | {counts['input']} |",
        f"| kept | {counts[Outcome.KEPT]} |",
        f"| removed as exact duplicates | {removed[DupKind.EXACT]} |",
        f"| removed as near duplicates | {removed[DupKind.NEAR]} |",
        *([f"| removed by line dedup (no text left) | {removed[DupKind.LINES]} |"] if removed[DupKind.LINES] else []),
        f"| quarantined / dropped | {counts[Outcome.QUARANTINED]['total']} / {counts[Outcome.DROPPED]['total']} |",
        "",
        f"Exact duplicates: equal text after {_exact_level(section)}; "
        f"{summary['exact_candidates_rejected']} documents shared a candidate key with a different text and were kept.",
        "",
        f"MinHash: {section.num_perm} permutations, {_shingle_line(section)}, "
        f"{bands} bands x {rows} rows for a Jaccard threshold of {section.threshold} "
        f"(P(candidate) at the threshold: {candidate_probability(section.threshold, bands, rows):.3f}); "
        f"{summary['candidates']} candidate pairs, verified by {section.verify} similarity.",
        "",
    ]
    if summary["shingle_units"]:
        lines += ["| shingles | documents |", "|---|---:|"]
        lines += [f"| {u.replace(ShingleUnit.TOO_SHORT, 'too short for near dedup (exact only)')} | {n} |" for u, n in summary["shingle_units"].items()]
        lines.append("")
    if summary.get("by_language"):
        lines += ["## By language", "",
                  "The record's `lang` (the clean stage's language identification), else the script of most of its "
                  "letters. Quarantined and dropped records are not counted here.", "",
                  "| lang | input | kept | exact | near | removed share |", "|---|---:|---:|---:|---:|---:|"]
        for lang, g in summary["by_language"].items():
            gone = g["input"] - g[Outcome.KEPT]
            lines.append(f"| {lang} | {g['input']} | {g[Outcome.KEPT]} | {g[DupKind.EXACT]} | {g[DupKind.NEAR]} | "
                         f"{gone / g['input']:.1%} |")
        lines.append("")
    if section.line_dedup:
        lines += [f"Line-level dedup removed {summary['lines_removed']} repeated lines from {summary['docs_with_lines_removed']} documents.", ""]
    if evaluation:
        lines += [
            "## Planted duplicates found",
            "",
            f"Pairs split by their true Jaccard similarity (same shingles) against the threshold {section.threshold}: "
            "pairs above it should be found, pairs below it need not be. Near copies of documents with fewer "
            "shingles than near dedup needs are counted as 'too short': they are matched only exactly.",
            "",
            "| planted pairs | found | planted | share found |",
            "|---|---:|---:|---:|",
        ]
        for kind, e in evaluation.items():
            lines.append(f"| {kind.replace('_', ' ')} | {e['found']} | {e['planted']} | {e['recall']:.3f} |")
        lines.append("")
    if summary["verified_similarity_histogram"]:
        lines += ["## Similarity of accepted pairs", "", "| Jaccard | pairs |", "|---|---:|"]
        lines += [f"| {b} | {n} |" for b, n in summary["verified_similarity_histogram"].items()]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in _plots(out, bands, rows, section.threshold, summary)] + [""]
    if examples:
        lines += ["## Examples", ""]
        for kind in sorted(examples):
            for doc_id, dup_of, text in examples[kind]:
                snippet = " ".join(text.split())[:120].replace("|", "\\|")
                lines.append(f"- {kind}: `{doc_id}` duplicate of `{dup_of}`: {snippet}")
        lines.append("")
    fs.write_text(fs.join(out, "report.md"), "\n".join(lines) + "\n")


def _exact_level(section: DedupSection) -> str:
    folds = [name for name, on in (("case folding", section.key.lowercase), ("whitespace collapsing", section.key.collapse_whitespace)) if on]
    return "NFC and " + " and ".join(folds) if folds else "NFC only"


def _shingle_line(section: DedupSection) -> str:
    sizes = ", ".join(f"{k} {v}" for k, v in sorted(section.char_shingle_size.items()))
    words = f"{section.shingle_size}-word shingles"
    chars = f"character n-grams ({sizes}; other scripts {section.default_char_shingle_size})"
    least = f"min {section.min_shingles} shingles" if section.min_shingles else "min n(1+t)/(1-t) shingles"
    if section.shingle_unit == "word":
        return f"{words} ({least})"
    if section.shingle_unit == "char":
        return f"{chars} ({least})"
    return (f"{words} or, for documents with >= {section.spaceless_min_share:.0%} of letters in scripts without spaces, "
            f"{chars} ({least})")


def run_dedup(section: DedupSection, pattern: str, out: str, beam_args: list[str], force: bool = False,
              upstream: Optional[str] = None, log: Callable[[str], None] = print) -> dict:
    """Run (or skip) the dedup stage from the files matching `pattern` into folder `out`."""
    try:
        bands, rows = section.banding()
    except ValueError as err:
        raise StageInputError(f"dedup: {err}") from None
    labels = section.eval_labels if section.eval_labels and fs.match(section.eval_labels) else None
    config = section.model_dump(mode="json")
    extra = {"labels": input_fingerprint(labels)} if labels else {}
    plan = plan_stage("dedup", config, pattern, out, force, extra, upstream, log=log)
    if plan.up_to_date:
        return plan.up_to_date
    out = begin(out, plan, "dedup", log)  # a fresh <out>.partial; the previous output stays until publish
    started = time.time()
    run_pipeline(plan.files, pattern, out, section, section.num_shards, dict(section.bad_records.per_kind),
                 section.bad_records.default, beam_args)
    pipeline_s = time.time() - started
    work = fs.join(out, WORK)
    products = read_products(work)
    summary = summary_products(products)
    if summary["unconverged_edges"]:
        raise StageInputError(
            f"dedup: connected components did not converge in {section.max_rounds} rounds "
            f"({summary['unconverged_edges']} edges left); raise dedup.max_rounds"
        )
    counts = outcome_counts(products, (Outcome.KEPT,), (Outcome.REMOVED, Outcome.QUARANTINED, Outcome.DROPPED))
    evaluation = planted_recall(out, labels, section) if labels else None
    summary.update({"bands": bands, "rows": rows, "threshold": section.threshold, "num_perm": section.num_perm,
                    "s_curve": {f"{j / 20:.2f}": round(candidate_probability(j / 20, bands, rows), 4) for j in range(21)}})
    fs.write_json(fs.join(out, "clusters.json"), summary)
    examples = {kind: items for kind, items in products.values("examples")}
    write_report(out, counts, summary, bands, rows, section, evaluation, examples)
    fs.remove_tree(work)
    timings = {"pipeline_s": round(pipeline_s, 2), "total_s": round(time.time() - started, 2)}
    outputs = {"kept": "kept/part-*.jsonl.gz", "removed": "removed/part-*.jsonl.gz", "quarantine": "quarantine/part-*.jsonl.gz",
               "clusters": "clusters.json", "report": "report.md"}
    manifest = write_manifest(out, "dedup", plan.fingerprint, config, plan.inputs, counts, timings, outputs,
                              {"evaluation": evaluation} if evaluation else None)
    out = publish(out)
    q = counts[Outcome.QUARANTINED]["total"] + counts[Outcome.DROPPED]["total"]
    log(f"dedup: {counts['input']} in, {counts[Outcome.KEPT]} kept, {removed_line(counts)}, {q} quarantined/dropped "
        f"in {timings['total_s']:.1f}s; "
        f"report: {fs.join(out, 'report.md')}")
    return manifest


def removed_line(counts: dict) -> str:
    """One line of the duplicates removed by kind, from the manifest's counts."""
    r = removed_by_kind(counts)
    lines = f", {r[DupKind.LINES]} emptied by line dedup" if r[DupKind.LINES] else ""
    return f"{r[DupKind.EXACT]} exact and {r[DupKind.NEAR]} near duplicates removed{lines}"
