"""Does the clean stage keep Python source a program? Python modules through `llmpipe clean`
with the default config, then each kept or rejected text parsed again and compared by AST.

    python bench/code_layout_check.py [--glob '/usr/lib/python3*/*.py'] [--limit 150] [--work DIR]

Prints, per `lang` the stage gave, how many modules come out with the same AST, a different one,
or no longer parse. `clean.normalize.code_layout: keep` protects the modules labelled `code`;
docstring-heavy modules the language identifier labels as prose go through the prose spacing steps.
"""
from __future__ import annotations

import argparse
import ast
import glob
import gzip
import json
import subprocess
import sys
import sysconfig
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glob", default=str(Path(sysconfig.get_paths()["stdlib"]) / "*.py"))
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("--work", default=str(ROOT / "bench" / "data" / "code_layout"))
    ap.add_argument("--set", action="append", default=[], help="a config override for the clean stage")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    source = {}
    for i, path in enumerate(sorted(glob.glob(args.glob))[: args.limit]):
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        source[f"py{i}"] = (path, text)
    with open(work / "in.jsonl", "w", encoding="utf-8") as f:
        for rid, (_, text) in source.items():
            f.write(json.dumps({"id": rid, "text": text}) + "\n")
    cmd = [sys.executable, "-m", "pipelines.cli", "clean", "--input", str(work / "in.jsonl"), "--output",
           str(work / "out"), "--force", *[x for s in args.set for x in ("--set", s)]]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    outcome: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for part in sorted(glob.glob(str(work / "out" / "kept" / "*.gz")) + glob.glob(str(work / "out" / "rejected" / "*.gz"))):
        for line in gzip.open(part):
            rec = json.loads(line)
            path, before = source[rec["id"]]
            try:
                same = ast.dump(ast.parse(rec["text"])) == ast.dump(ast.parse(before))
                kind = "same AST" if same else "different AST"
            except SyntaxError:
                kind = "no longer parses"
            key = ("code" if rec.get("lang") == "code" else "prose label", kind)
            outcome[key] += 1
            if kind != "same AST":
                examples.setdefault(kind, []).append(Path(path).name)
    print(f"{len(source)} modules from {args.glob}; `llmpipe clean` defaults{' + ' + ', '.join(args.set) if args.set else ''}")
    for (label, kind), n in sorted(outcome.items()):
        print(f"  lang {label}: {kind} {n}")
    for kind, names in examples.items():
        print(f"  {kind}: {', '.join(names[:10])}")


if __name__ == "__main__":
    main()
