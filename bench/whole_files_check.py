"""Does the clean stage keep good documents of very different lengths? A corpus the way a user
brings one: short catalog entries and UI messages beside whole files (GnuPG help, vim tutors,
CPython modules), every document real and good, through `llmpipe clean` with the default config.

    python bench/whole_files_check.py [--work DIR] [--set clean.KEY=VALUE ...]

Sources (whatever this machine has; bench/multilingual_corpus.py reads them): systemd catalog
entries and gettext messages (5 per document, at most 80 documents per language, seeded) in nine
languages, /usr/share/gnupg/help*.txt whole, the first 20 vim tutors whole, 150 CPython standard
library modules whole (seeded). Prints the documents per source kind and each reason that
rejected any: every rejection here is a good document lost.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import random
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import multilingual_corpus as mc  # noqa: E402


def build(seed: int = 0) -> list[dict]:
    """The corpus: {"id": "<kind>-<n>", "text"}, kind one of catalog, mo, gnupg, tutor, py."""
    rng = random.Random(seed)
    docs: list[dict] = []

    def add(kind: str, text: str) -> None:
        if text.strip():
            docs.append({"id": f"{kind}-{len(docs)}", "text": text})

    for lang in mc.LANGS:
        for _, text in mc.catalog_docs(lang):
            add("catalog", text)
        messages = list(mc.mo_docs(lang, per_doc=5))
        for _, text in rng.sample(messages, min(len(messages), 80)):
            add("mo", text)
    for path in sorted(glob.glob("/usr/share/gnupg/help*.txt")):
        add("gnupg", Path(path).read_text(encoding="utf-8", errors="replace"))
    for path in sorted(glob.glob("/usr/share/vim/vim*/tutor/tutor*.utf-8"))[:20]:
        add("tutor", Path(path).read_text(encoding="utf-8", errors="replace"))
    modules = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    rng.shuffle(modules)
    for path in modules[:150]:
        add("py", Path(path).read_text(encoding="utf-8", errors="replace"))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=str(ROOT / "bench" / "data" / "whole_files"))
    ap.add_argument("--set", action="append", default=[], help="a config override for the clean stage")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    docs = build()
    with open(work / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    cmd = [sys.executable, "-m", "pipelines.cli", "clean", "--input", str(work / "corpus.jsonl"), "--output",
           str(work / "out"), "--force", *[x for s in args.set for x in ("--set", s)]]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    sizes = {d["id"]: len(d["text"]) for d in docs}
    kinds = Counter(d["id"].rsplit("-", 1)[0] for d in docs)
    lost: Counter = Counter()
    examples: dict[tuple[str, str], list[str]] = {}
    for part in sorted(glob.glob(str(work / "out" / "rejected" / "*.gz"))):
        for line in gzip.open(part):
            rec = json.loads(line)
            key = (rec["id"].rsplit("-", 1)[0], rec["reason"])
            lost[key] += 1
            examples.setdefault(key, []).append(f"{sizes[rec['id']]:,}")
    print(f"{len(docs)} good documents: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"lost: {sum(lost.values())}\n")
    print("| source | reason | documents | their lengths (characters) |\n|---|---|---:|---|")
    for (kind, reason), n in sorted(lost.items()):
        print(f"| {kind} | `{reason}` | {n} | {', '.join(examples[(kind, reason)][:8])} |")


if __name__ == "__main__":
    main()
