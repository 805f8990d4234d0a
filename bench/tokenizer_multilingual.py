"""Chinese + English: llmpipe's tokenizer stage against HF `tokenizers`' BpeTrainer, held-out
bytes/token per language at the same vocabulary.

    python bench/tokenizer_multilingual.py --vocab 8192                     # the stage, defaults
    python bench/tokenizer_multilingual.py --vocab 8192 --compare-patterns  # pre-tokenizer table

The corpus is built from real text on this machine (never a test fixture):
- Chinese: the gettext catalogs /usr/share/locale/zh_CN/LC_MESSAGES/*.mo (msgstr texts read with
  `gettext.GNUTranslations`, 40 messages per document), the zh_CN man pages (troff source), systemd's
  zh catalogs and vim's UTF-8 Chinese tutors (identical files once).
- English: CPython's standard library on this machine (/usr/lib/python3.*/*.py): each module's
  docstrings as one document, then source code in ~8 KB chunks, up to the Chinese corpus's size.
Every record carries `lang` (zh or en), so the stage's report groups by it. Held-out documents are
the stage's own split (`is_heldout`, fraction 0.1); HF trains on the same training documents
(ByteLevel(add_prefix_space=False), initial_alphabet=ByteLevel.alphabet(), min_frequency=2, whole
documents, RAYON_NUM_THREADS=2) and is measured on the same held-out documents.

`--compare-patterns` learns merges in-process (no Beam) with each pre-tokenizer, every pre-token
kept and min_frequency 2 (and once as the stage did before: pre-tokens seen once dropped), and
lists bytes/token per language against HF's: the evidence for the `multilingual` pattern's piece
length in docs/tokenizer.md.
"""
from __future__ import annotations

import argparse
import ast
import gettext
import glob
import gzip
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import append_results, machine_line  # noqa: E402
from bench.tokenizer_throughput import hf_train  # noqa: E402
from llmdata.bpe import CJK_PIECE, HAN, PATTERNS, PretokenCounter, learn_merges, multilingual_pattern  # noqa: E402
from llmdata.tokenizer_io import BPETokenizer  # noqa: E402
from pipelines.cli import main as llmpipe  # noqa: E402
from pipelines.tokenizer import is_heldout  # noqa: E402

HELDOUT = 0.1


def chinese_documents() -> list[tuple[str, str]]:
    docs: list[tuple[str, str]] = []
    for path in sorted(glob.glob("/usr/share/locale/zh_CN/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, UnicodeDecodeError, ValueError) as err:
            print(f"skipped {path}: {err}")
            continue
        msgs = [v for k, v in catalog.items() if k and isinstance(v, str) and v.strip()]
        for i in range(0, len(msgs), 40):
            docs.append((f"zh-mo-{Path(path).stem}-{i // 40}", "\n".join(msgs[i:i + 40])))
    for path in sorted(glob.glob("/usr/share/man/zh_CN/*/*")):
        raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
        docs.append((f"zh-man-{Path(path).name}", raw.decode("utf-8", errors="replace")))
    seen: set[str] = set()
    for path in sorted(glob.glob("/usr/lib/systemd/catalog/*zh*")) + sorted(glob.glob("/usr/share/vim/vim*/tutor/tutor.zh*utf-8")):
        text = open(path, encoding="utf-8").read()
        if text not in seen:
            seen.add(text)
            docs.append((f"zh-file-{Path(path).name}", text))
    return docs


def english_documents(target_bytes: int) -> list[tuple[str, str]]:
    prose, code = [], []
    for path in sorted(glob.glob("/usr/lib/python3.*/*.py")):
        src = open(path, encoding="utf-8", errors="replace").read()
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        strings = [ast.get_docstring(n) for n in ast.walk(tree) if isinstance(n, kinds)]
        strings = [s for s in strings if s and len(s) > 40]
        if strings:
            prose.append((f"en-doc-{Path(path).stem}", "\n\n".join(strings)))
        chunk: list[str] = []
        size = part = 0
        for block in src.split("\n\n"):
            chunk.append(block)
            size += len(block)
            if size > 8000:
                code.append((f"en-src-{Path(path).stem}-{part}", "\n\n".join(chunk)))
                chunk, size, part = [], 0, part + 1
        if chunk:
            code.append((f"en-src-{Path(path).stem}-{part}", "\n\n".join(chunk)))
    out: list[tuple[str, str]] = []
    for pool in (prose, code):
        got = 0
        for doc in pool:
            if got >= target_bytes / 2:
                break
            out.append(doc)
            got += len(doc[1].encode("utf-8"))
    return out


def build_corpus(folder: Path) -> list[dict]:
    zh = chinese_documents()
    en = english_documents(sum(len(t.encode("utf-8")) for _, t in zh))
    records = [{"id": i, "text": t, "lang": "zh"} for i, t in zh] + [{"id": i, "text": t, "lang": "en"} for i, t in en]
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(2):  # two files: one per worker process
        with gzip.open(folder / f"part-{s:03d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for rec in records[s::2]:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return records


def per_language(heldout: list[dict], encode) -> dict[str, float]:
    out = {}
    for lang in ("zh", "en"):
        texts = [r["text"] for r in heldout if r["lang"] == lang]
        out[lang] = sum(len(t.encode("utf-8")) for t in texts) / sum(len(encode(t)) for t in texts)
    return out


def sizes(records: list[dict], lang: str) -> tuple[int, float]:
    chosen = [r for r in records if r["lang"] == lang]
    return len(chosen), sum(len(r["text"].encode("utf-8")) for r in chosen) / 1e6


def compare_patterns(train: list[dict], heldout: list[dict], vocab: int, hf: dict) -> list[str]:
    han = f"[{HAN}]"
    import regex

    rows = ["| pre-tokenizer | pre-tokens in the table | zh bytes/token | vs HF | en bytes/token | vs HF | tokens of more than 6 Han characters |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    # (name, pattern, least count a pre-token needs to enter the table): 2 is the stage before
    # this change, which dropped pre-tokens seen once before counting pairs
    choices = [("gpt4, pre-tokens seen once dropped (the stage before)", PATTERNS["gpt4"], 2),
               ("gpt2", PATTERNS["gpt2"], 1), ("gpt4", PATTERNS["gpt4"], 1)]
    choices += [(f"multilingual, pieces of {k}" + (" (the default)" if k == CJK_PIECE else ""), multilingual_pattern(k), 1)
                for k in (3, 4, 5, 6, 8)]
    choices.append(("multilingual, whole runs", multilingual_pattern(0), 1))
    for name, pattern, least in choices:
        counter = PretokenCounter(pattern)
        for r in train:
            counter.add(r["text"])
        table = {t.encode("utf-8"): n for t, n in counter.take().items() if n >= least}
        tok = BPETokenizer(learn_merges(table, vocab - 6, 2).merges, pattern)
        got = per_language(heldout, tok.encode)
        long_han = sum(1 for b in tok.vocab.values() if len(regex.findall(han, b.decode("utf-8", errors="ignore"))) > 6)
        rows.append(f"| {name} | {len(table)} | {got['zh']:.4f} | {got['zh'] / hf['zh']:.3f}x | {got['en']:.4f} | "
                    f"{got['en'] / hf['en']:.3f}x | {long_han} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--compare-patterns", action="store_true")
    parser.add_argument("--work", default=str(ROOT / "bench" / "data"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    work = Path(args.work)
    corpus = work / "multilingual_corpus"
    records = build_corpus(corpus)
    train = [r for r in records if not is_heldout(r["id"], HELDOUT)]
    heldout = [r for r in records if is_heldout(r["id"], HELDOUT)]
    hf_s, hf = hf_train([r["text"] for r in train], args.vocab, threads=2)
    hf_bpt = per_language(heldout, lambda t: hf.encode(t).ids)
    corpus_line = (f"Corpus: {'; '.join(f'{lang} {n} documents, {mb:.2f} MB' for lang, (n, mb) in ((l, sizes(records, l)) for l in ('zh', 'en')))}; "
                   f"held out (fraction {HELDOUT}, by id hash): "
                   f"{'; '.join(f'{lang} {n} documents, {mb:.3f} MB' for lang, (n, mb) in ((l, sizes(heldout, l)) for l in ('zh', 'en')))}.")
    if args.compare_patterns:
        lines = ["", f"## Tokenizer pre-tokenizers on Chinese + English ({time.strftime('%Y-%m-%d')})", "",
                 f"Command: `python bench/tokenizer_multilingual.py --vocab {args.vocab} --compare-patterns`. {corpus_line} "
                 f"Merges learned in-process from every pre-token (min_frequency 2), vocabulary {args.vocab}; HF BpeTrainer on "
                 f"the same documents: zh {hf_bpt['zh']:.4f}, en {hf_bpt['en']:.4f} bytes/token.", machine_line(), ""]
        lines += compare_patterns(train, heldout, args.vocab, hf_bpt)
        append_results(args.results, "\n".join(lines) + "\n")
        return

    out = work / "tokenizer_multilingual_out"
    started = time.time()
    assert llmpipe(["tokenizer", "--input", str(corpus / "*.jsonl.gz"), "--output", str(out), "--force", "--workers", "2",
                    "--set", f"tokenizer.vocab_size={args.vocab}", "--set", f"tokenizer.heldout_fraction={HELDOUT}"]) == 0
    ours_s = time.time() - started
    manifest = json.loads((out / "manifest.json").read_text())
    figures = manifest["tokenizer"]
    ours = BPETokenizer.load(str(out))
    ours_bpt = per_language(heldout, ours.encode)
    reported = {lang: figures["heldout_by_language"][lang]["bytes_per_token"] for lang in ("zh", "en")}
    lines = [
        "",
        f"## Tokenizer on Chinese + English, per language ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `python bench/tokenizer_multilingual.py --vocab {args.vocab}`. {corpus_line} llmpipe: the tokenizer stage with "
        f"its defaults (pattern `multilingual`, min_frequency 2, max_pretokens 2,000,000), 2 worker processes. HF: BpeTrainer, "
        "ByteLevel(add_prefix_space=False), initial_alphabet=ByteLevel.alphabet(), min_frequency=2, whole documents, RAYON_NUM_THREADS=2.",
        machine_line(),
        "",
        "| trainer | wall s | vocabulary | zh held-out bytes/token | en held-out bytes/token |",
        "|---|---:|---:|---:|---:|",
        f"| llmpipe tokenizer stage (merges {manifest['timings']['merge_s']:.1f} s) | {ours_s:.1f} | {ours.vocab_size} | {ours_bpt['zh']:.4f} | {ours_bpt['en']:.4f} |",
        f"| HF tokenizers BpeTrainer | {hf_s:.1f} | {hf.get_vocab_size()} | {hf_bpt['zh']:.4f} | {hf_bpt['en']:.4f} |",
        "",
        f"- zh {ours_bpt['zh'] / hf_bpt['zh']:.3f}x HF's bytes/token, en {ours_bpt['en'] / hf_bpt['en']:.3f}x (target >= 0.99x each); "
        f"wall time {ours_s / hf_s:.2f}x HF's. The stage's report gave zh {reported['zh']:.4f}, en {reported['en']:.4f} "
        f"(grouped by the records' `lang`). Distinct pre-tokens {figures['distinct_pretokens']}, in the merge table "
        f"{figures['table_size']} (pruned: {figures['pruned_pretokens']}).",
    ]
    append_results(args.results, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
