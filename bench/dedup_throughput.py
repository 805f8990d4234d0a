"""Dedup throughput and quality, side by side with datatrove's 4-stage MinHash dedup.

    python bench/dedup_throughput.py --mb 48
    python bench/dedup_throughput.py --mb 8 --skip-datatrove

The corpus: technical documents of ~10 KB (stdlib docstring sections grouped), with planted
exact copies (re-cased and re-spaced: equal under the dedup key) and near copies at edit rates
from 0.5% to 6% of words, so their true Jaccard similarity falls on both sides of 0.8. Each
planted pair's true Jaccard is computed with llmpipe's key and its shingles
(`pipelines.dedup.shingle_hashes`: chosen per script, 5-word shingles on this English corpus,
as datatrove's default MinHash config uses). Both tools are
scored the same way: a planted pair is caught when at least one of its two documents is removed;
a removed document outside the planted groups is wrongly removed unless some document of the
corpus reaches the threshold with it.
Results are appended to bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmdata.dedup import DedupOptions  # noqa: E402
from llmdata.sample_data import good_documents, near_duplicate  # noqa: E402
from bench.common import append_results, machine_line, workers_flag  # noqa: E402
from pipelines.cli import main as llmpipe  # noqa: E402
from pipelines.dedup import exact_jaccard, shingle_hashes  # noqa: E402

DT_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"


def build_corpus(folder: Path, target_mb: float, shards: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    base = [d.text for d in good_documents()]
    records, copies = [], {}
    size = 0
    n = 0
    while size < target_mb * 1e6:
        r = rng.random()
        if records and r < 0.08:
            src = rng.choice(records[: max(1, len(records) // 2)])
            text = src["text"].upper() if rng.random() < 0.5 else src["text"].replace(" ", "  ")
            kind = "exact"
        elif records and r < 0.20:
            src = rng.choice(records[: max(1, len(records) // 2)])
            text = near_duplicate(src["text"], rng, rng.uniform(0.005, 0.06))
            kind = "near"
        else:
            src, kind = None, None
            text = "\n\n".join(rng.sample(base, rng.randint(3, 6)))
        rec = {"id": f"d{n:06d}", "text": text}
        if src is not None:
            copies[rec["id"]] = (src["id"], kind)
        records.append(rec)
        size += len(text.encode())
        n += 1
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(records) // shards)
    for s in range(shards):
        with gzip.open(folder / f"part-{s:03d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as f:
            for rec in records[s * per : (s + 1) * per]:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    opts = DedupOptions()
    text_of = {r["id"]: r["text"] for r in records}
    truth = {}
    for doc, (orig, kind) in copies.items():
        sim = exact_jaccard(shingle_hashes(text_of[doc], opts), shingle_hashes(text_of[orig], opts))
        truth[doc] = {"original": orig, "kind": kind, "jaccard": sim}
    in_groups = set(copies) | {o for o, _ in copies.values()}
    unique = [r["id"] for r in records if r["id"] not in in_groups]
    return {"docs": len(records), "bytes": size, "truth": truth, "unique": unique}


def load_hashes(corpus: Path) -> dict:
    """Shingle hash sets of every document, for checking removals against the truth."""
    opts = DedupOptions()
    out = {}
    for path in sorted(corpus.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                out[rec["id"]] = shingle_hashes(rec["text"], opts)
    return out


def has_true_duplicate(doc: str, hashes: dict, threshold: float) -> bool:
    """Whether any other document reaches the threshold with `doc` (a natural duplicate)."""
    mine = hashes[doc]
    return any(other != doc and exact_jaccard(mine, h) >= threshold for other, h in hashes.items())


def score(removed: set[str], info: dict, threshold: float, hashes: dict) -> dict:
    pairs = [(d, t) for d, t in info["truth"].items()]
    above = [(d, t) for d, t in pairs if t["jaccard"] >= threshold]
    below = [(d, t) for d, t in pairs if t["jaccard"] < threshold]

    def caught(items):
        return sum(1 for d, t in items if d in removed or t["original"] in removed)

    # A document outside the planted groups may still have a natural duplicate (the standard
    # library repeats docstrings); only a removal with no document at the threshold is wrong.
    unique_removed = [u for u in info["unique"] if u in removed]
    wrong = sum(1 for u in unique_removed if not has_true_duplicate(u, hashes, threshold))
    return {
        "natural_duplicates_removed": len(unique_removed) - wrong,
        "recall_at_threshold": caught(above) / len(above) if above else None,
        "pairs_above": len(above),
        "caught_below": f"{caught(below)}/{len(below)}",
        "unique_wrongly_removed": wrong / len(info["unique"]),
        "removed": len(removed),
    }


def removed_ids(folder: Path) -> set[str]:
    ids = set()
    for path in folder.glob("part-*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            ids.update(json.loads(line)["id"] for line in f)
    return ids


def run_llmpipe(corpus: Path, out: Path, workers: int) -> tuple[float, set[str]]:
    args = ["dedup", "--input", str(corpus / "*.jsonl.gz"), "--output", str(out), "--force"]
    if workers > 1:
        args += ["--workers", str(workers)]
    started = time.time()
    assert llmpipe(args) == 0
    return time.time() - started, removed_ids(out / "removed")


def run_datatrove(corpus: Path, out: Path, workers: int) -> tuple[float, set[str], dict] | None:
    if not DT_PYTHON.exists():
        print("datatrove venv missing (make bench-setup); skipping datatrove", file=sys.stderr)
        return None
    subprocess.run(["rm", "-rf", str(out)], check=True)
    proc = subprocess.run([str(DT_PYTHON), str(ROOT / "bench" / "datatrove_dedup.py"), str(corpus), str(out), str(workers)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["wall_s"], set(result["removed"]), result["stages_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=48.0)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--work", default=str(ROOT / "bench" / "data"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()

    work = Path(args.work)
    corpus = work / f"dedup_corpus_{args.mb:g}mb"
    meta = corpus / "truth.json"
    if not meta.exists():
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(build_corpus(corpus, args.mb, args.shards)))
    info = json.loads(meta.read_text())
    docs, mb = info["docs"], info["bytes"] / 1e6
    threshold = DedupOptions().threshold
    hashes = load_hashes(corpus)
    rows = []
    for workers in args.workers:
        wall, removed = run_llmpipe(corpus, work / f"llmpipe_dedup_{workers}", workers)
        rows.append(("llmpipe dedup (exact + near, verified)", workers, wall, score(removed, info, threshold, hashes), ""))
        print(rows[-1], flush=True)
        if not args.skip_datatrove:
            d = run_datatrove(corpus, work / f"datatrove_dedup_{workers}", workers)
            if d:
                stages = ", ".join(f"{k} {v:.0f}s" for k, v in d[2].items())
                rows.append(("datatrove 0.10 MinHash (4 stages)", workers, d[0], score(d[1], info, threshold, hashes), stages))
                print(rows[-1], flush=True)

    n_exact = sum(1 for t in info["truth"].values() if t["kind"] == "exact")
    n_near = len(info["truth"]) - n_exact
    lines = [
        "",
        f"## Dedup throughput and quality ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `python bench/dedup_throughput.py --mb {args.mb:g}{workers_flag(args.workers)}`. Corpus: {docs} documents, {mb:.1f} MB "
        f"(~{info['bytes'] / docs / 1e3:.1f} KB each) in {args.shards} gzip shards, with {n_exact} planted exact and "
        f"{n_near} near copies. Threshold {threshold}: a planted pair above it is caught when one of its two "
        "documents is removed. A removed document outside the planted groups is wrongly removed only if no "
        "document of the corpus reaches the threshold with it (the standard library repeats docstrings, so some "
        "are natural duplicates).",
        machine_line(),
        "",
        "| tool | worker processes | wall s | docs/s per core | recall of pairs with J >= 0.8 | pairs below 0.8 caught | natural duplicates removed | unique docs wrongly removed | removed | stage times |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, workers, wall, s, stages in rows:
        recall = "-" if s["recall_at_threshold"] is None else f"{s['recall_at_threshold']:.3f} of {s['pairs_above']}"
        lines.append(f"| {label} | {workers} | {wall:.1f} | {docs / wall / workers:.1f} | {recall} | {s['caught_below']} | "
                     f"{s['natural_duplicates_removed']} | {s['unique_wrongly_removed']:.2%} | {s['removed']} | {stages} |")
    base = {w: wall for label, w, wall, _, _ in rows if label.startswith("datatrove")}
    ratios = [f"{w} worker(s): llmpipe at {base[w] / wall:.1f}x datatrove's docs/s per core"
              for label, w, wall, _, _ in rows if label.startswith("llmpipe") and w in base]
    if ratios:
        lines += [""] + [f"- {r}" for r in ratios]
    append_results(args.results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
