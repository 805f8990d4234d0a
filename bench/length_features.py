"""How the clean stage's features depend on a document's length: the figures behind the defaults of
docs/clean.md "A long document is not a worse one".

    python bench/length_features.py [--corpus FILE ...]

Default corpora (whatever exists): the demo corpus (data/demo/shard-*.jsonl.gz, from `make
pipeline`), bench/data/whole_files/corpus.jsonl (`python bench/whole_files_check.py`) and
bench/data/multilingual/corpus.jsonl (`python bench/multilingual_eval.py`). Prints:

- per corpus, the Spearman correlation with log word count (documents of at least 20 words) of the
  plain type-token ratio, MSTTR-50 (`llmdata.features.msttr`) and MATTR-50 (the moving-average
  variant, Covington and McFall 2010, computed here for comparison), and the time each takes;
- zlib (level 1) compression ratio of the first n bytes of the demo's English documents over 4,000
  characters: median, Q1 and Q3 per n;
- the mean and standard deviation of English word lengths in the demo corpus, and the spread of a
  mean of n words on the judging scale log(mean + 1).
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import math
import statistics
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scipy.stats import spearmanr  # noqa: E402

from llmdata.features import msttr  # noqa: E402
from llmdata.langid import identify, load  # noqa: E402
from llmdata.scripts import words  # noqa: E402

DEFAULTS = [str(ROOT / "data" / "demo" / "shard-*.jsonl.gz"), str(ROOT / "bench" / "data" / "whole_files" / "corpus.jsonl"),
            str(ROOT / "bench" / "data" / "multilingual" / "corpus.jsonl")]


def mattr(tokens: list[str], window: int = 50) -> float:
    """Moving-average type-token ratio in one pass (a token counts in every window that starts after
    its previous occurrence), for comparison with msttr."""
    n = len(tokens)
    if n <= window:
        return len(set(tokens)) / n if n else 0.0
    last: dict[str, int] = {}
    total = 0
    for j, tok in enumerate(tokens):
        lo = max(last.get(tok, -1) + 1, j - window + 1)
        last[tok] = j
        total += max(min(j, n - window) - lo + 1, 0)
    return total / ((n - window + 1) * window)


def texts(pattern: str) -> list[str]:
    out = []
    for path in sorted(glob.glob(pattern)):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("text"), str) and rec["text"].strip():
                    out.append(rec["text"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", nargs="+", default=DEFAULTS,
                    help="jsonl globs with a text field; the first is the demo corpus (its English documents give the zlib and word-length figures)")
    args = ap.parse_args()
    print("| corpus | documents >= 20 words | TTR | MSTTR-50 | MATTR-50 | msttr us/doc | mattr us/doc |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pattern in args.corpus:
        docs = [[w.lower() for w in words(t)] for t in texts(pattern)]
        docs = [d for d in docs if len(d) >= 20]
        if not docs:
            continue
        logn = [math.log(len(d)) for d in docs]
        ttr = [len(set(d)) / len(d) for d in docs]
        started = time.perf_counter()
        seg = [msttr(d) for d in docs]
        t_seg = (time.perf_counter() - started) / len(docs) * 1e6
        started = time.perf_counter()
        mov = [mattr(d) for d in docs]
        t_mov = (time.perf_counter() - started) / len(docs) * 1e6
        print(f"| {pattern} | {len(docs)} | {spearmanr(logn, ttr)[0]:.2f} | {spearmanr(logn, seg)[0]:.2f} | "
              f"{spearmanr(logn, mov)[0]:.2f} | {t_seg:.0f} | {t_mov:.0f} |")

    load()
    english = [t for t in texts(args.corpus[0]) if identify(t)[0] == "en"]  # the demo corpus first
    long = [t for t in english if len(t) > 4000]
    print(f"\nzlib level 1 on the first n bytes of {len(long)} English demo documents over 4,000 characters:\n")
    print("| n bytes | median ratio | Q1 | Q3 |\n|---:|---:|---:|---:|")
    for n in (100, 200, 300, 500, 800, 1200, 2000, 4000):
        ratios = [len(zlib.compress(t.encode()[:n], 1)) / n for t in long]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"| {n} | {statistics.median(ratios):.2f} | {q1:.2f} | {q3:.2f} |")
    lengths = [len(w) for t in english for w in words(t)]
    mean, sd = statistics.fmean(lengths), statistics.pstdev(lengths)
    print(f"\nEnglish word lengths in the demo corpus: {len(lengths)} words, mean {mean:.2f}, sd {sd:.2f} characters; "
          f"a mean of n words varies by {sd / (mean + 1):.2f}/sqrt(n) on the judging scale log(mean + 1)")


if __name__ == "__main__":
    main()
