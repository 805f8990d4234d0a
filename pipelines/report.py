"""The clean stage's `report.md`: the funnel, reasons, thresholds, imputation, both quality
numbers when labels exist, and PNG histograms of the main features before and after filtering."""
from __future__ import annotations

import math
from typing import Any

from llmdata.features import feature_scale
from llmdata.reasons import EvalOutcome, ImputeAction, Outcome
from pipelines import fs
from pipelines.config import CleanSection


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.4g}"
    return str(x)


def _plot_histograms(out: str, hist: dict, bins: int) -> list[str]:
    """One PNG per feature with the before and after counts over the same bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fs.makedirs(fs.join(out, "plots"))
    for name, (lo, hi, use_log) in sorted(hist["edges"].items()):
        width = (hi - lo) / bins
        edges = [lo + i * width for i in range(bins + 1)]
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for phase, color in (("before", "#bbbbbb"), ("after", "#1f77b4")):
            counts = hist[phase].get(name, {})
            ys = [counts.get(i, 0) for i in range(bins)]
            # one filled step artist per phase (ax.bar draws a patch per bin: 3x slower to render)
            ax.stairs(ys, edges, fill=True, color=color, alpha=0.9 if phase == "before" else 0.75, label=phase)
        offset = feature_scale(name)[1]
        ax.set_xlabel(f"log10({name} + {offset:g})" if use_log else name)
        ax.set_ylabel("documents")
        ax.set_yscale("symlog")
        ax.legend()
        ax.set_title(name)
        fig.tight_layout()
        rel = f"plots/{name}.png"
        path = fs.join(out, rel)
        if fs.is_local(path):
            fig.savefig(path)
        else:
            import io

            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            fs.write_bytes_atomic(path, buf.getvalue())
        plt.close(fig)
        written.append(rel)
    return written


def write_clean_report(out: str, stats: dict, thresholds: dict, examples: dict, hist: dict, section: CleanSection) -> None:
    c = stats["counts"]
    lines = ["# Clean stage report", ""]
    lines += [
        "| records | count | share |",
        "|---|---:|---:|",
    ]
    total = max(c["input"], 1)
    for label, n in (
        ("input", c["input"]),
        ("kept", c[Outcome.KEPT]),
        ("rejected (filters)", c[Outcome.REJECTED]["total"]),
        ("quarantined (bad records, written)", c[Outcome.QUARANTINED]["total"]),
        ("dropped (bad records, counted only)", c[Outcome.DROPPED]["total"]),
    ):
        lines.append(f"| {label} | {n} | {n / total:.1%} |")
    lines.append("")
    lines.append("`input = kept + rejected + quarantined + dropped` was checked before the manifest was written.")
    lines.append("")

    ev = stats.get("evaluation")
    if ev:
        lines += ["## Filtering quality on labelled data", ""]
        lines.append(
            f"- **Junk removed**: {_fmt(ev['junk_removed'] and ev['junk_removed'] * 100)}% of {ev['junk_total']} planted junk documents"
        )
        lines.append(f"- **Good kept**: {_fmt(ev['good_kept'] and ev['good_kept'] * 100)}% of {ev['good_total']} good documents")
        lines += ["", "| label | kept | rejected | quarantined |", "|---|---:|---:|---:|"]
        for label, row in ev["by_label"].items():
            lines.append(f"| {label} | {row.get(EvalOutcome.KEPT, 0)} | {row.get(EvalOutcome.REJECTED, 0)} | "
                         f"{row.get(EvalOutcome.QUARANTINED_OR_ABSENT, 0)} |")
        lines.append("")

    if stats.get("rules_skipped"):
        from llmdata.quality import skip_summary

        lines += ["## Web rules that could not judge a language", ""]
        lines += [f"- {line}" for line in skip_summary(stats["rules_skipped"])]
        lines.append("")

    for title, key in (("Rejected by reason", Outcome.REJECTED), ("Quarantined by reason", Outcome.QUARANTINED),
                       ("Dropped by reason", Outcome.DROPPED)):
        by_reason = c[key]["by_reason"]
        if not by_reason:
            continue
        lines += [f"## {title}", "", "| reason | count |", "|---|---:|"]
        lines += [f"| `{r}` | {n} |" for r, n in sorted(by_reason.items(), key=lambda kv: -kv[1])]
        lines.append("")

    by_lang = stats.get("by_language") or {}
    if by_lang:
        lines += [
            "## By language",
            "",
            "Language from py3langid on a 1,000-character sample (`code`: at least 30% of the lines look "
            "like source code, `und`: no letters); see docs/clean.md.",
            "",
            "| lang | input | kept | kept share | rejected | top reasons |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for lang, row in by_lang.items():
            reasons = ", ".join(f"`{r}` {n}" for r, n in list(row["by_reason"].items())[:3])
            share = row[Outcome.KEPT] / row["input"] if row["input"] else 0.0
            lines.append(f"| {lang} | {row['input']} | {row[Outcome.KEPT]} | {share:.1%} | {row[Outcome.REJECTED]} | {reasons or '-'} |")
        lines.append("")

    groups = thresholds.get("groups") if thresholds else None
    if groups:
        lines += [
            "## Outlier thresholds (computed from the data)",
            "",
            f"Source: {stats['thresholds_source']}. Computed per script group (`group_by: "
            f"{thresholds.get('group_by')}`); a group with fewer than {thresholds.get('min_group_docs')} documents "
            f"has none of its own and is "
            + ("judged by the global ones (`*`)." if thresholds.get("small_groups") == "global" else
               "not judged by this filter (`-`; documents without letters use the global ones, `*`)."),
            "",
            "| group | documents | judged by |",
            "|---|---:|---|",
        ]
        docs = thresholds.get("group_docs", {})
        for script, group in thresholds.get("used_by", {}).items():
            lines.append(f"| {script} | {docs.get(script, '-')} | {f'`{group}`' if group else '-'} |")
        lines += [
            "",
            "Intervals in each feature's own units; features marked log were judged as log(x + offset) "
            "(see llmdata/features.py).",
            "",
        ]
        for group in sorted(groups, key=lambda g: (g != "*", g)):
            lines += [
                (f"**`*`** (all {docs.get(group, '-')} documents)" if group == "*"
                 else f"**{group}** ({docs.get(group, '-')} documents)"),
                "",
                "| feature | scale | method | side | k | median | accepted low | accepted high |",
                "|---|---|---|---|---:|---:|---:|---:|",
            ]
            for name, t in sorted(groups[group].items()):
                scale = "log" if t.get("log") else "linear"
                lines.append(
                    f"| {name} | {scale} | {t['method']} | {t.get('side', 'both')} | {_fmt(t.get('k'))} | "
                    f"{_fmt(t.get('median_raw'))} | {_fmt(t.get('low_raw'))} | {_fmt(t.get('high_raw'))} |"
                )
            lines.append("")

    imp = stats.get("imputation") or {}
    if imp:
        lines += ["## Numeric metadata", "", "| field | missing share | action | rule |", "|---|---:|---|---|"]
        for name, e in imp.items():
            lines.append(f"| {name} | {e['missing_share']:.1%} | {e['action']} | {e.get('rule', '-')} |")
        dropped = [n for n, e in imp.items() if e["action"] == ImputeAction.DROP]
        if dropped:
            lines.append("")
            lines.append(
                f"Dropped (missing in more than {section.missing.max_missing_share:.0%} of records): {', '.join(dropped)}."
            )
        lines.append("")

    plots = _plot_histograms(out, hist, section.report.bins) if hist.get("edges") else []
    if plots:
        lines += ["## Features before and after filtering", ""]
        lines += [f"![{p}]({p})" for p in plots]
        lines.append("")

    if examples:
        lines += ["## Examples", ""]
        for reason in sorted(examples):
            lines.append(f"**{reason}**")
            lines.append("")
            for where, text, detail in examples[reason]:
                snippet = " ".join(str(text).split())[:160].replace("|", "\\|")
                extra = f" ({detail})" if isinstance(detail, str) and detail else ""
                lines.append(f"- `{where}`{extra}: {snippet}")
            lines.append("")

    fs.write_text(fs.join(out, "report.md"), "\n".join(lines) + "\n")
