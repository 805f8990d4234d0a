"""Good documents kept and planted junk removed per language, on a multilingual mix built from
this machine's translated text, at thresholds computed from the whole mix.

    python bench/clean_multilingual.py                    # prints a markdown table
    python bench/clean_multilingual.py --english 600 --per-lang 60

The mix: English technical documents from the demo generator (llmdata.sample_data, the majority),
documents in zh, ja, ko, ru, ar, he, hi, th built from gettext catalogs, vim tutors, systemd
catalogs and GnuPG help files (bench/langid_compare.collect, one document = several entries of one
source joined), CPython modules as code files, and planted junk that is not English: random CJK
ideographs in lines ending in "。", random Hangul, random Thai and Cyrillic letters in lines,
and zh/ja/ru documents encoded as UTF-8 and decoded as Latin-1 or cp1252. The clean stage runs
through the CLI with its default config and the labels, so the figures are its own report's.
"""
from __future__ import annotations

import argparse
import glob
import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.langid_compare import collect  # noqa: E402
from llmdata.sample_data import good_documents  # noqa: E402
from pipelines.cli import main as llmpipe  # noqa: E402

LANGS = ("zh", "ja", "ko", "ru", "ar", "he", "hi", "th")
_SPANS = {"cjk": (0x4E00, 0x9FFF, "。"), "hangul": (0xAC00, 0xD7A3, "."), "thai": (0x0E01, 0x0E3A, " "),
          "cyrillic": (0x0430, 0x044F, ".")}


def random_lines(rng: random.Random, kind: str) -> str:
    lo, hi, end = _SPANS[kind]
    lines = []
    for _ in range(rng.randint(4, 12)):
        n = rng.randint(20, 80)
        chars = [chr(rng.randint(lo, hi)) for _ in range(n)]
        if kind == "cyrillic":  # words of 2-9 random letters, as a space-separated script would look
            words, i = [], 0
            while i < n:
                k = rng.randint(2, 9)
                words.append("".join(chars[i:i + k]))
                i += k
            chars = list(" ".join(words))
        lines.append("".join(chars) + end)
    return "\n".join(lines)


def build(folder: Path, english: int, per_lang: int, seed: int = 0) -> dict[str, int]:
    rng = random.Random(seed)
    rows: list[dict] = []
    labels: list[dict] = []

    def add(label: str, text: str) -> None:
        rid = f"{label.replace(':', '-')}-{len(rows):05d}"
        rows.append({"id": rid, "text": text})
        labels.append({"id": rid, "label": label})

    docs = list(good_documents())
    rng.shuffle(docs)
    for d in docs[:english]:
        add("good:en", d.text)
    samples = collect(per_lang=10_000, seed=seed)
    native: dict[str, list[str]] = {}
    for lang in LANGS:
        entries = [t for _, t in samples.get(lang, [])]
        rng.shuffle(entries)
        # a document = 1-4 entries of the language joined, 300+ characters
        out, i = [], 0
        while i < len(entries) and len(out) < per_lang:
            k = rng.randint(1, 4)
            text = "\n\n".join(entries[i:i + k])
            i += k
            if len(text) >= 300:
                out.append(text)
        native[lang] = out
        for text in out:
            add(f"good:{lang}", text)
    for path in sorted(glob.glob("/usr/lib/python3*/*.py"))[: per_lang]:
        add("good:code", Path(path).read_text(errors="replace")[:8000])
    n_junk = max(per_lang // 4, 5)
    for kind in _SPANS:
        for _ in range(n_junk):
            add(f"junk:random_{kind}", random_lines(rng, kind))
    sources = native["zh"] + native["ja"] + native["ru"]
    for j in range(n_junk * 2):
        text = rng.choice(sources)
        add(f"junk:mojibake_{'latin1' if j % 2 else 'cp1252'}",
            text.encode("utf-8").decode("latin-1" if j % 2 else "cp1252", errors="replace"))
    with open(folder / "mix.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(folder / "labels.jsonl", "w", encoding="utf-8") as f:
        for lab in labels:
            f.write(json.dumps(lab) + "\n")
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab["label"]] = counts.get(lab["label"], 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--english", type=int, default=600, help="English documents (the majority)")
    ap.add_argument("--per-lang", type=int, default=60, help="documents per other language and code files")
    ap.add_argument("--set", action="append", default=[], help="extra --set for the clean stage")
    ap.add_argument("--keep", help="build and run in this folder and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        counts = build(folder, args.english, args.per_lang)
        cli = ["clean", "--config", str(ROOT / "configs/pipeline.yaml"), "--input", str(folder / "mix.jsonl"),
               "--output", str(folder / "out"), "--force", "--set", f"clean.eval_labels={folder / 'labels.jsonl'}"]
        for s in args.set:
            cli += ["--set", s]
        assert llmpipe(cli) == 0
        stats = json.loads((folder / "out" / "stats.json").read_text())
        thresholds = json.loads((folder / "out" / "thresholds.json").read_text())
        rejected = {}
        import gzip

        for path in sorted((folder / "out" / "rejected").glob("part-*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    rejected.setdefault(r["id"].rsplit("-", 1)[0], []).append(r["reason"])
    ev = stats["evaluation"]
    print(f"labels: {counts}\n")
    print("| label | documents | kept | rejected | kept share | reasons (rejected) |")
    print("|---|---:|---:|---:|---:|---|")
    for label, row in ev["by_label"].items():
        n = sum(row.values())
        reasons: dict[str, int] = {}
        for r in rejected.get(label.replace(":", "-"), []):
            reasons[r] = reasons.get(r, 0) + 1
        top = ", ".join(f"`{k}` {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        print(f"| {label} | {n} | {row.get('kept', 0)} | {row.get('rejected', 0)} | {row.get('kept', 0) / n:.1%} | {top} |")
    print(f"\ngood kept {ev['good_kept']:.1%} of {ev['good_total']}, junk removed {ev['junk_removed']:.1%} of {ev['junk_total']}")
    print(f"threshold groups: {thresholds['used_by']} (documents: {thresholds['group_docs']})")


if __name__ == "__main__":
    main()
