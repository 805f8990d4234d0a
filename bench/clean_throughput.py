"""Clean-stage throughput, side by side with HF datatrove on the same input and machine.

    python bench/clean_throughput.py --mb 48          # build the corpus, run everything
    python bench/clean_throughput.py --mb 8 --skip-datatrove

The corpus is technical text of about 10 KB per document (stdlib docstrings grouped, as in the
anchor measurement), with the demo generator's junk and bad records mixed in. llmpipe runs its
whole clean stage (quarantine, imputation, normalization, outlier thresholds, report) twice:
with its defaults, and with the same Gopher + C4 + FineWeb rule sets datatrove runs. Each runs
in-process (one core) and with 2 worker processes. datatrove runs in its own venv
(`make bench-setup`), LocalPipelineExecutor(tasks=N, workers=N). Figures per core are
documents/s divided by the number of worker processes. Results are appended to bench/RESULTS.md.
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

from llmdata.sample_data import JUNK_MAKERS, bad_lines, good_documents  # noqa: E402
from bench.common import append_results, machine_line, workers_flag  # noqa: E402
from pipelines.cli import main as llmpipe  # noqa: E402

DT_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"


def build_corpus(folder: Path, target_mb: float, shards: int, seed: int = 0) -> dict:
    """Documents of ~10 KB (3 to 6 docstring sections each) plus 2% junk and 1% bad lines."""
    rng = random.Random(seed)
    base = [d.text for d in good_documents()]
    small_junk = [(label, maker) for label, (maker, _) in JUNK_MAKERS.items() if "huge" not in label]
    lines: list[bytes] = []
    size = 0
    n = 0
    while size < target_mb * 1e6:
        if rng.random() < 0.02:
            label, maker = rng.choice(small_junk)
            rec = {"id": f"junk-{n}", "text": maker(rng), "source": "web"}
        else:
            parts = rng.sample(base, rng.randint(3, 6))
            rec = {"id": f"doc-{n}", "text": "\n\n".join(parts), "source": "stdlib", "meta": {"seq": n}}
        raw = json.dumps(rec, ensure_ascii=False).encode()
        lines.append(raw)
        size += len(raw)
        n += 1
    bad = bad_lines(rng, [f"doc-{i}" for i in range(10)])
    for raw, _ in bad[: max(1, len(lines) // 100)]:
        lines.insert(rng.randrange(len(lines)), raw)
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(lines) // shards)
    for s in range(shards):
        with gzip.open(folder / f"part-{s:03d}.jsonl.gz", "wb", compresslevel=1) as f:
            for raw in lines[s * per : (s + 1) * per]:
                f.write(raw + b"\n")
    return {"lines": len(lines), "bytes": size}


def run_llmpipe(corpus: Path, out: Path, workers: int, rules: bool) -> dict:
    args = ["clean", "--input", str(corpus / "*.jsonl.gz"), "--output", str(out), "--force"]
    if rules:
        for rule in ("gopher_quality", "gopher_repetition", "c4", "fineweb"):
            args += ["--set", f"clean.quality.{rule}.enabled=true"]
        args += ["--set", "clean.quality.c4.require_terminal_punct=false"]  # as datatrove's run
    if workers > 1:
        args += ["--workers", str(workers)]
    started = time.time()
    assert llmpipe(args) == 0
    wall = time.time() - started
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    return {"wall_s": wall, "kept": counts["kept"], "input": counts["input"]}


def run_datatrove(corpus: Path, out: Path, workers: int) -> dict | None:
    if not DT_PYTHON.exists():
        print("datatrove venv missing (make bench-setup); skipping datatrove", file=sys.stderr)
        return None
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    proc = subprocess.run([str(DT_PYTHON), str(ROOT / "bench" / "datatrove_clean.py"), str(corpus), str(out), str(workers)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
    corpus = work / f"clean_corpus_{args.mb:g}mb"
    meta = corpus / "corpus.json"
    if not meta.exists():
        info = build_corpus(corpus, args.mb, args.shards)
        meta.write_text(json.dumps(info))
    info = json.loads(meta.read_text())
    docs, mb = info["lines"], info["bytes"] / 1e6
    rows = []
    for workers in args.workers:
        for rules in (False, True):
            label = f"llmpipe clean ({'defaults' if not rules else '+ Gopher/C4/FineWeb rules'})"
            r = run_llmpipe(corpus, work / f"llmpipe_out_{workers}_{int(rules)}", workers, rules)
            rows.append((label, workers, r["wall_s"], r["kept"]))
            print(rows[-1], flush=True)
        if not args.skip_datatrove:
            d = run_datatrove(corpus, work / f"datatrove_out_{workers}", workers)
            if d:
                rows.append(("datatrove 0.10 Gopher+C4+FineWeb filters", workers, d["wall_s"], d["kept"]))
                print(rows[-1], flush=True)

    lines = [
        "",
        f"## Clean stage throughput ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `python bench/clean_throughput.py --mb {args.mb:g}{workers_flag(args.workers)}`. Corpus: {docs} lines, {mb:.1f} MB of jsonl "
        f"(~{info['bytes'] / docs / 1e3:.1f} KB per document) in {args.shards} gzip shards; 2% junk, 1% bad lines.",
        machine_line(),
        "",
        "| tool | worker processes | wall s | docs/s | docs/s per core | MB/s per core | kept |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, workers, wall, kept in rows:
        lines.append(f"| {label} | {workers} | {wall:.1f} | {docs / wall:.1f} | {docs / wall / workers:.1f} | {mb / wall / workers:.2f} | {kept} |")
    base = {w: wall for label, w, wall, _ in rows if label.startswith("datatrove")}
    ratios = [f"{workers} worker(s), {label}: {base[workers] / wall:.1f}x datatrove's docs/s per core"
              for label, workers, wall, _ in rows if not label.startswith("datatrove") and workers in base]
    if ratios:
        lines += [""] + [f"- {r}" for r in ratios]
    append_results(args.results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
