"""Where the clean stage's per-document time goes: each step of `ScoreDocument` timed alone.

    python bench/profile_clean.py --mb 48 --docs 2000
    python bench/profile_clean.py --mb 48 --docs 2000 --digest before.txt   # outputs' SHA-256

Reads the first `--docs` good lines of the clean benchmark's corpus (bench/clean_throughput.py
builds it) and runs, document by document, the steps `pipelines.clean.ScoreDocument.process`
runs with the default configuration, in its order: the normalizer, `has_visible`,
`junk_scores`, `identify` (language), `apply_rules`, `script_counts` + `dominant_script` +
`group_name`, `document_features`. Each step is timed over all documents (process CPU time,
`time.process_time`), best of `--repeat` rounds, and reported in microseconds per document and
as a share of the steps' total. Beam's own cost (graph, shuffles, I/O, statistics) is what the
whole stage takes beyond this sum.

`--digest FILE` writes one SHA-256 per step over every document's output (JSON, sorted keys,
floats as repr): a speed-up that keeps every digest keeps every output byte for byte.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.clean_throughput import build_corpus  # noqa: E402
from llmdata import features as feats  # noqa: E402
from llmdata.junk import junk_scores  # noqa: E402
from llmdata.langid import identify  # noqa: E402
from llmdata.normalize import Normalizer, has_visible  # noqa: E402
from llmdata.outliers import group_name  # noqa: E402
from llmdata.quality import apply_rules  # noqa: E402
from llmdata.scripts import dominant_script, script_counts  # noqa: E402
from pipelines.config import CleanSection  # noqa: E402


def load_texts(corpus: Path, limit: int) -> list[str]:
    """The `text` of the first `limit` lines that are JSON objects with a string text that
    encodes to UTF-8 (the others are quarantined before the steps timed here)."""
    texts: list[str] = []
    for path in sorted(corpus.glob("*.jsonl.gz")):
        with gzip.open(path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("text"), str):
                    try:
                        rec["text"].encode("utf-8")
                    except UnicodeEncodeError:  # a lone surrogate: the stage quarantines it
                        continue
                    texts.append(rec["text"])
                    if len(texts) >= limit:
                        return texts
    return texts


def timed(fn, items, repeat: int) -> tuple[float, list]:
    best, out = float("inf"), []
    for _ in range(repeat):
        started = time.process_time()
        out = [fn(x) for x in items]
        best = min(best, time.process_time() - started)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=48.0, help="which clean benchmark corpus (built if missing)")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / "bench" / "data"))
    parser.add_argument("--digest", help="write each step's output SHA-256 to this file")
    args = parser.parse_args()

    corpus = Path(args.work) / f"clean_corpus_{args.mb:g}mb"
    if not (corpus / "corpus.json").exists():
        (corpus / "corpus.json").parent.mkdir(parents=True, exist_ok=True)
        info = build_corpus(corpus, args.mb, 8)
        (corpus / "corpus.json").write_text(json.dumps(info))
    raw = load_texts(corpus, args.docs)
    section = CleanSection()
    normalizer = Normalizer(section.normalize)
    identify("warm up the identifier's model")  # loaded once per worker; not a per-document cost
    feats.document_features("warm up")

    steps: list[tuple[str, float, list]] = []
    t, texts = timed(normalizer, raw, args.repeat)
    steps.append(("normalize (Normalizer)", t, texts))
    t, out = timed(has_visible, texts, args.repeat)
    steps.append(("has_visible", t, out))
    raw = [r for r, visible in zip(raw, out) if visible]  # the others are quarantined here
    texts = [x for x, visible in zip(texts, out) if visible]
    t, out = timed(lambda i: junk_scores(raw[i], texts[i]), range(len(raw)), args.repeat)
    steps.append(("junk_scores (ftfy badness, rare CJK, char entropy)", t, out))
    t, langs = timed(identify, texts, args.repeat)
    steps.append(("identify (py3langid on a 1,000-char sample + code rule)", t, langs))
    t, out = timed(lambda i: apply_rules(texts[i], section.quality, lang=langs[i][0], notes=[])[:2], range(len(raw)), args.repeat)
    steps.append(("apply_rules (defaults: none enabled)", t, out))

    def script_step(i: int):
        counts = script_counts(texts[i])
        return list(counts.items()), dominant_script(texts[i], counts), group_name(counts, langs[i][0])

    t, out = timed(script_step, range(len(raw)), args.repeat)
    steps.append(("script_counts + dominant_script + group_name", t, out))
    t, out = timed(feats.document_features, texts, args.repeat)
    steps.append(("document_features (incl. per-script words)", t, out))

    n = len(raw)
    total = sum(t for _, t, _ in steps)
    chars = sum(len(x) for x in raw)
    print(f"{n} documents, {chars / n:,.0f} characters each on average, best of {args.repeat} rounds (CPU time)")
    print("| step | us per document | share |\n|---|---:|---:|")
    for name, t, _ in steps:
        print(f"| {name} | {t / n * 1e6:,.0f} | {t / total:.1%} |")
    print(f"| sum | {total / n * 1e6:,.0f} | 100% |  (= {n / total:,.0f} documents/s for these steps alone)")
    langs_seen: dict[str, int] = {}
    for lang, _ in langs:
        langs_seen[lang] = langs_seen.get(lang, 0) + 1
    print("languages:", dict(sorted(langs_seen.items(), key=lambda kv: -kv[1])))
    if args.digest:
        lines = []
        for name, _, out in steps:
            blob = json.dumps(out, sort_keys=True, ensure_ascii=False, default=repr).encode()
            lines.append(f"{hashlib.sha256(blob).hexdigest()}  {name}")
        Path(args.digest).write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
