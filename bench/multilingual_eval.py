"""llmpipe's clean and dedup stages on the labelled multilingual corpus, scored per language.

    python bench/multilingual_eval.py                 # build the corpus, run both stages, append to RESULTS.md
    python bench/multilingual_eval.py --no-write      # print only

Runs the stages as a user would, through the CLI with the built-in (whole-mix) defaults:
`python -m pipelines.cli clean --input corpus.jsonl --output W/01-clean`, then `dedup` on its
kept shards. Then, from the labels (bench/multilingual_corpus.py):

- good kept %, per language group: real documents (and their planted copies) the clean stage kept,
  and beside it the planted short operator pairs and templated messages it kept;
- junk removed %, per language group: planted junk the clean stage rejected or quarantined;
- exact-dup precision: of the documents the exact stage removed, the share whose text equals
  their keeper's at the configured exact level (after whitespace and case folding, code keeping
  its case), with how many were byte-identical, whitespace-only or case-only merges; the
  code/math/symbol pairs that differ in one operator must never be merged exactly;
- near-dup recall on one-character edits, per language: copies in their original's cluster;
- templated messages merged: distinct short messages from one template removed as duplicates.

A second table runs the opt-in web rules (Gopher quality, Gopher repetition, C4, FineWeb)
in-process on each language's good documents and gives the share each keeps.

Targets (issue 15): good kept >= 98% in every group; non-English junk removed >= 90%; exact-dup
precision 1.0; near-dup recall >= 0.95 for zh, ja, th, en; no templated message merged.
"""
from __future__ import annotations

import argparse
import gzip
import glob
import inspect
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import append_results, machine_line  # noqa: E402
from bench.multilingual_corpus import write as write_corpus  # noqa: E402
from llmdata.dedup import KeyOptions, split_exact  # noqa: E402

GROUPS = ["en", "zh", "ja", "ko", "th", "ar", "he", "hi", "ru", "code"]
NEAR_LANGS = ("zh", "ja", "th", "en")


def _read(folder: str) -> list[dict]:
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "part-*.jsonl.gz"))):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def run_stage(args: list[str], log: list[str]) -> float:
    """One llmpipe CLI call; returns its wall time in seconds. Raises on a non-zero exit."""
    cmd = [sys.executable, "-m", "pipelines.cli", *args]
    log.append(" ".join(["python", "-m", "pipelines.cli", *args]).replace(str(ROOT) + os.sep, ""))
    started = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[:1])} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.time() - started


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}% ({a}/{b})" if b else "-"


def score(labels: list[dict], texts: dict[str, str], clean_kept: list[dict], dedup_kept: list[dict], dedup_removed: list[dict]) -> dict:
    """The figures of the module docstring from the labels and the stages' outputs."""
    kept_ids = {r["id"] for r in clean_kept}
    by_id = {lab["id"]: lab for lab in labels}
    rows: dict = {}
    for g in GROUPS:
        good = [lab for lab in labels if lab["lang"] == g and lab["label"] in ("good", "good:exact_dup", "good:near_dup")]
        short = [lab for lab in labels if lab["lang"] == g and lab["label"] in ("good:operator_pair", "good:template")]
        junk = [lab for lab in labels if lab["lang"] == g and lab["kind"] == "junk"]
        rows[g] = {
            "good": (sum(lab["id"] in kept_ids for lab in good), len(good)),
            "short": (sum(lab["id"] in kept_ids for lab in short), len(short)),
            "junk": (sum(lab["id"] not in kept_ids for lab in junk), len(junk)),
        }
        junk_by = defaultdict(lambda: [0, 0])
        for lab in junk:
            junk_by[lab["label"]][0] += lab["id"] not in kept_ids
            junk_by[lab["label"]][1] += 1
        rows[g]["junk_by_kind"] = dict(junk_by)
    cluster = {r["id"]: r.get("cluster") for r in dedup_kept + dedup_removed}
    exact_removed = [r for r in dedup_removed if r.get("dup_kind") == "exact"]
    # The definition: exact duplicates are texts equal after, at most, whitespace and case
    # folding as configured (the CLI ran with the defaults). Precision is measured at that level,
    # and the merges that are not byte-identical are counted by what folding made them equal.
    key_opts = KeyOptions()
    langs = {r["id"]: r["lang"] for r in dedup_kept + dedup_removed if "lang" in r}  # clean's label; raw input: none

    def as_record(rid: str) -> dict:
        return {"id": rid, "text": texts.get(rid, ""), **({"lang": langs[rid]} if rid in langs else {})}

    exact_level, kinds = [], defaultdict(int)
    for r in exact_removed:
        same = len(split_exact([as_record(r["id"]), as_record(r["duplicate_of"])], key_opts)) == 1
        exact_level.append(same)
        a, b = texts[r["id"]], texts.get(r["duplicate_of"], "")
        kinds["identical" if a == b else "whitespace only" if " ".join(a.split()) == " ".join(b.split())
              else "case only" if " ".join(a.lower().split()) == " ".join(b.lower().split()) else "different"] += 1
    exact_ok = sum(exact_level)
    wrong_exact = [(r["id"], r["duplicate_of"]) for r, ok in zip(exact_removed, exact_level) if not ok]
    pairs = [(lab["id"], lab["distinct_from"]) for lab in labels if lab.get("distinct_from") and lab["id"].endswith("-a")]
    reached = [(a, b) for a, b in pairs if a in cluster and b in cluster]
    merged_pairs = [(a, b) for a, b in reached if cluster[a] is not None and cluster[a] == cluster[b]]
    kind = {r["id"]: r.get("dup_kind") for r in dedup_removed}
    merged_exact = [(a, b) for a, b in merged_pairs if "exact" in (kind.get(a), kind.get(b))]
    near = {}
    for g in GROUPS:
        edits = [lab for lab in labels if lab["lang"] == g and lab.get("edit") == "one_char"]
        both = [lab for lab in edits if lab["id"] in cluster and lab["duplicate_of"] in cluster]
        found = sum(cluster[lab["id"]] is not None and cluster[lab["id"]] == cluster[lab["duplicate_of"]] for lab in both)
        near[g] = (found, len(both), len(edits))
    templ = [lab["id"] for lab in labels if lab.get("template")]
    templ_reached = [t for t in templ if t in cluster]
    templ_merged = [r["id"] for r in dedup_removed if r["id"] in set(templ) and by_id.get(r["duplicate_of"], {}).get("template")]
    return {
        "rows": rows,
        "exact": (exact_ok, len(exact_removed), wrong_exact, dict(kinds)),
        "pairs": (len(merged_pairs), len(reached), len(pairs), merged_pairs, merged_exact),
        "near": near,
        "templates": (len(templ_merged), len(templ_reached), len(templ), templ_merged),
    }


def web_rule_table(labels: list[dict], texts: dict[str, str]) -> dict[str, dict[str, tuple[int, int]]]:
    """Share of each language's good documents (label "good") each web rule keeps, in-process,
    the rule told the document's language when it accepts `lang=` (else as it was)."""
    from llmdata import quality as q

    rules = {
        "gopher_quality": (q.gopher_quality, q.GopherQuality(enabled=True)),
        "gopher_repetition": (q.gopher_repetition, q.GopherRepetition(enabled=True)),
        "c4": (q.c4_filter, q.C4Rules(enabled=True)),
        "fineweb": (q.fineweb, q.FineWebRules(enabled=True)),
    }
    table: dict = {}
    for name, (fn, opts) in rules.items():
        takes_lang = "lang" in inspect.signature(fn).parameters
        for g in GROUPS:
            docs = [texts[lab["id"]] for lab in labels if lab["lang"] == g and lab["label"] == "good"]
            kept = 0
            for text in docs:
                result = fn(text, opts, lang=None if g == "code" else g) if takes_lang else fn(text, opts)
                kept += result[0] is None
            table.setdefault(name, {})[g] = (kept, len(docs))
    return table


def _dedup_lines(s: dict) -> list[str]:
    ok, n, wrong, kinds = s["exact"]
    merged, reached, total, merged_pairs, merged_exact = s["pairs"]
    t_merged, t_reached, t_total, t_ids = s["templates"]
    near = ", ".join(f"{g} {_pct(f, b)}" for g, (f, b, _) in s["near"].items() if g in NEAR_LANGS)
    return [
        f"- exact-dup precision at the configured exact level (texts equal after whitespace and case folding, code "
        f"case-sensitive): {ok}/{n}" + (f"; wrong: {', '.join(f'{a}->{b}' for a, b in wrong[:8])}" if wrong else "")
        + "; the removals by how their text compares with the keeper's: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
        f"- one-operator code/math/symbol pairs merged as exact duplicates: {len(merged_exact)} of {reached} pairs reaching dedup ({total} planted)"
        + (f": {', '.join(a[:-2] for a, _ in merged_exact)}" if merged_exact else ""),
        f"- the same pairs merged as near duplicates (long functions with one operator flipped, Jaccard above the threshold): "
        f"{merged - len(merged_exact)}" + (f": {', '.join(sorted(a[:-2] for a, _ in merged_pairs if (a, _) not in merged_exact))}" if merged > len(merged_exact) else ""),
        f"- distinct templated messages merged: {t_merged} ({t_reached} of {t_total} reached dedup)" + (f": {', '.join(t_ids)}" if t_ids else ""),
        f"- near-dup recall on one-character edits: {near}",
    ]


def render(s: dict, raw: dict, web: dict, commands: list[str], timings: dict, summary: dict) -> str:
    lines = ["| group | good kept | short pairs and messages kept | junk removed | random-script junk | mojibake | repeated token | near-dup recall (1-char edits) |", "|---|---|---|---|---|---|---|---|"]
    for g in GROUPS:
        r = s["rows"][g]
        jb = r["junk_by_kind"]
        near = s["near"][g]
        lines.append(
            f"| {g} | {_pct(*r['good'])} | {_pct(*r['short']) if r['short'][1] else '-'} | {_pct(*r['junk'])} | {_pct(*jb['junk:random_script']) if 'junk:random_script' in jb else '-'}"
            f" | {_pct(*jb['junk:mojibake']) if 'junk:mojibake' in jb else '-'} | {_pct(*jb['junk:repeated_token']) if 'junk:repeated_token' in jb else '-'}"
            f" | {_pct(near[0], near[1]) if near[2] else '-'}{'' if near[1] == near[2] else f' ({near[2] - near[1]} not reaching dedup)'} |"
        )
    web_lines = ["| rule | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
    for name, row in web.items():
        web_lines.append(f"| {name} | " + " | ".join(f"{100 * k / n:.0f}%" if n else "-" for k, n in (row[g] for g in GROUPS)) + " |")
    counts = defaultdict(lambda: defaultdict(int))
    for key, v in summary.items():
        lang, label = key.split(":", 1)
        counts[lang][label] += v
    kinds = sorted({k for c in counts.values() for k in c})
    corpus_lines = ["| group | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for g in GROUPS:
        corpus_lines.append(f"| {g} | " + " | ".join(str(counts[g].get(k, 0)) for k in kinds) + " |")
    return "\n".join([
        f"\n## Multilingual clean + dedup (bench/multilingual_eval.py, {time.strftime('%Y-%m-%d')})\n",
        machine_line(),
        "Commands: `python bench/multilingual_eval.py` (`make bench-multilingual`), which ran:",
        *[f"    {c}" for c in commands],
        f"Clean took {timings['clean']:.0f} s, dedup {timings['dedup']:.0f} s (on the raw corpus {timings['dedup_raw']:.0f} s). Built-in defaults (no config file).\n",
        "Corpus (bench/multilingual_corpus.py; documents per language group and label):\n",
        *corpus_lines,
        "\nClean and dedup, per language group (good = real documents and their planted copies; short = the planted operator pairs, from 8-character formulas to whole functions, and templated messages, which exist to test dedup):\n",
        *lines,
        "\nDedup after clean (the pipeline):\n",
        *_dedup_lines(s),
        "\nDedup alone on the whole corpus (every planted pair and message reaches it):\n",
        *_dedup_lines(raw),
        "\nOpt-in web rules, in-process, share of each group's good documents kept (rule told the language when it accepts `lang=`):\n",
        *web_lines,
        "",
    ])


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / "bench" / "data" / "multilingual"), help="corpus and stage outputs go here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0, help="DirectRunner workers (0: in-process)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print the section, do not append it to RESULTS.md")
    args = ap.parse_args(argv)
    work = Path(args.work)
    summary = write_corpus(str(work), args.seed)
    labels = [json.loads(line) for line in open(work / "labels.jsonl", encoding="utf-8")]
    texts = {}
    with open(work / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            texts[rec["id"]] = rec["text"]
    commands: list[str] = []
    extra = ["--workers", str(args.workers)] if args.workers else []
    timings = {
        "clean": run_stage(["clean", "--input", str(work / "corpus.jsonl"), "--output", str(work / "01-clean"), "--force",
                            "--set", f"clean.eval_labels={work / 'labels.jsonl'}", *extra], commands),
        "dedup": run_stage(["dedup", "--input", str(work / "01-clean" / "kept" / "part-*.jsonl.gz"), "--output", str(work / "02-dedup"), "--force", *extra], commands),
        "dedup_raw": run_stage(["dedup", "--input", str(work / "corpus.jsonl"), "--output", str(work / "02-dedup-raw"), "--force", *extra], commands),
    }
    clean_kept = _read(str(work / "01-clean" / "kept"))
    s = score(labels, texts, clean_kept, _read(str(work / "02-dedup" / "kept")), _read(str(work / "02-dedup" / "removed")))
    raw = score(labels, texts, clean_kept, _read(str(work / "02-dedup-raw" / "kept")), _read(str(work / "02-dedup-raw" / "removed")))
    text = render(s, raw, web_rule_table(labels, texts), commands, timings, summary)
    if args.no_write:
        print(text)
    else:
        append_results(args.results, text)


if __name__ == "__main__":
    main()
