"""Near-dup recall of one-character edits per language, and precision on pairs that must stay apart.

    python bench/dedup_multilingual.py
    python bench/dedup_multilingual.py --per-language 150 --no-write

Inputs are real text found on this machine (nothing is committed): paragraphs of the vim tutor in
each language, systemd's message catalogs, GnuPG's help texts, and, for Thai (no tutor or catalog
here), the Thai translations in /usr/share/locale/th/LC_MESSAGES/*.mo joined in file order into
paragraphs. Paragraphs of 100-500 characters are kept; each gets one copy with one character
substituted, deleted or inserted (a letter of the same paragraph, so the edit stays in its script).

Scored with the stage's own functions (`pipelines.dedup.near_pair`: shingles per script,
datasketch MinHash, the LSH bands, exact-Jaccard verification, the short-document rule):
- recall: share of (paragraph, edited copy) pairs found, for every paragraph and for those long
  enough for near dedup, against the previous shingling (candidate key without NFKC, 5-grams of
  whitespace/`\\w+` words, every document eligible);
- precision on pairs that must stay apart: the code/math/symbol pairs, the systemd catalog
  subjects (short templated notices) instantiated for two units, and every pair of distinct
  paragraphs of one language: how many the exact stage or near dedup would merge.
Results are appended to bench/RESULTS.md unless --no-write.
"""
from __future__ import annotations

import argparse
import gettext
import glob
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import mmh3
import numpy as np
import regex

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import append_results, machine_line  # noqa: E402
from llmdata.dedup import DedupOptions, KeyOptions, band_keys, dedup_key, key_hash, split_exact  # noqa: E402
from pipelines.dedup import document_shingles, exact_jaccard, minhash_signature, minhash_template, near_pair  # noqa: E402

TUTOR = sorted(glob.glob("/usr/share/vim/vim*/tutor"))
CATALOG = "/usr/lib/systemd/catalog"
GNUPG = "/usr/share/gnupg"
SOURCES = {
    "zh": ["{tutor}/tutor.zh_cn.utf-8", f"{CATALOG}/systemd.zh_CN.catalog", f"{GNUPG}/help.zh_CN.txt"],
    "ja": ["{tutor}/tutor.ja.utf-8", f"{GNUPG}/help.ja.txt"],
    "th": ["/usr/share/locale/th/LC_MESSAGES/*.mo"],
    "ko": ["{tutor}/tutor.ko.utf-8", f"{CATALOG}/systemd.ko.catalog"],
    "ru": ["{tutor}/tutor.ru.utf-8", f"{CATALOG}/systemd.ru.catalog", f"{GNUPG}/help.ru.txt"],
    "en": ["{tutor}/tutor.utf-8", f"{CATALOG}/systemd.catalog", f"{GNUPG}/help.txt"],
}
SYMBOL_PAIRS = [("x = y + 1", "x = y - 1"), ("a > b", "a < b"), ("C", "C++"), ("i++", "i--"), ("x\u00b2", "x2"),
                ("if (a && b) return;", "if (a || b) return;"), ("\u4f60\u597d\uff01", "\u4f60\u597d\uff1f"),
                ("return x / 2", "return x * 2"), ("a == b", "a != b"), ("H\u2082O", "H2O")]


def paragraphs_of(path: str) -> list[str]:
    if path.endswith(".mo"):
        with open(path, "rb") as f:
            cat = gettext.GNUTranslations(f)._catalog  # msgid -> msgstr, in file order
        msgs = [m for k, m in cat.items() if k and isinstance(m, str) and m.strip()]
        out, cur = [], ""
        for m in msgs:  # consecutive messages joined into paragraphs of 100-500 characters
            cur = f"{cur}\n{m}".strip()
            if len(cur) >= 150:
                out.append(cur)
                cur = ""
        return out
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = [ln for ln in text.split("\n") if not ln.startswith("#") and not ln.startswith("-- ")
             and not re.match(r"^(Subject|Defined-By|Support|Documentation):", ln)]
    return [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]


def corpus(per_language: int, rng: random.Random) -> dict[str, list[str]]:
    out = {}
    for lang, patterns in SOURCES.items():
        paras = []
        for pattern in patterns:
            for tutor in TUTOR or ["/nonexistent"]:
                for path in sorted(glob.glob(pattern.format(tutor=tutor))):
                    paras += paragraphs_of(path)
        paras = sorted({p for p in paras if 100 <= len(p) <= 500})
        rng.shuffle(paras)
        out[lang] = paras[:per_language]
    return out


def one_edit(text: str, rng: random.Random) -> str:
    letters = [c for c in text if c.isalpha()]
    i, kind, c = rng.randrange(len(text)), rng.choice("sdi"), rng.choice(letters)
    if kind == "s":
        return text[:i] + c + text[i + 1:]
    return text[:i] + text[i + 1:] if kind == "d" else text[:i] + c + text[i:]


_OLD_WORD = regex.compile(r"\w+")
_OLD_KEY = KeyOptions(nfkc=False)


def old_found(a: str, b: str, opts: DedupOptions, bands: int, rows: int, template) -> bool:
    """The previous shingling: 5-grams of \\w+ words of the key, no per-script unit, no minimum."""
    sets = []
    for t in (a, b):
        toks = _OLD_WORD.findall(dedup_key(t, _OLD_KEY))
        grams = {" ".join(toks[i:i + 5]) for i in range(max(len(toks) - 4, 1))} - {""}
        sets.append(np.unique(np.array([mmh3.hash(g, opts.seed, signed=False) for g in grams], dtype=np.uint32)))
    sigs = [minhash_signature(s, opts, template) for s in sets]
    if not set(band_keys(sigs[0], bands, rows)) & set(band_keys(sigs[1], bands, rows)):
        return False
    return exact_jaccard(*sets) >= opts.threshold


def merged_pairs(texts: list[str], opts: DedupOptions, bands: int, rows: int, template) -> list[tuple[int, int, str, float]]:
    """Pairs of distinct texts the stage would merge: exact (after verification) or near (LSH + verify)."""
    out = []
    groups = defaultdict(list)
    for i, t in enumerate(texts):
        groups[key_hash(dedup_key(t, opts.key))].append({"id": i, "text": t})
    for g in groups.values():
        for part in split_exact(g, opts.key):
            out += [(part[0]["id"], r["id"], "exact", 1.0) for r in part[1:]]
    data, buckets = {}, defaultdict(list)
    for i, t in enumerate(texts):
        hashes, _, n = document_shingles(t, opts)
        if hashes.size >= opts.min_shingles_needed(n):
            data[i] = hashes
            for key in band_keys(minhash_signature(hashes, opts, template), bands, rows):
                buckets[key].append(i)
    cands = {(a, b) for ids in buckets.values() for x, a in enumerate(ids) for b in ids[x + 1:]}
    for a, b in sorted(cands):
        sim = exact_jaccard(data[a], data[b])
        if sim >= opts.threshold:
            out.append((a, b, "near", sim))
    return out


def _share(fn: list[int]) -> str:
    return f"{fn[0] / fn[1]:.2f} of {fn[1]}" if fn[1] else "-"


def catalog_subjects() -> list[str]:
    subjects = set()
    for path in glob.glob(f"{CATALOG}/systemd*.catalog"):
        for line in Path(path).read_text(encoding="utf-8", errors="replace").split("\n"):
            if line.startswith("Subject:"):
                subjects.add(line[len("Subject:"):].strip())
    return sorted(subjects)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-language", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-shingles", type=int, default=None, help="dedup.min_shingles (default: n(1+t)/(1-t))")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    opts = DedupOptions(min_shingles=args.min_shingles)
    bands, rows = opts.banding()
    template = minhash_template(opts)
    started = time.time()
    texts = corpus(args.per_language, rng)

    rows_out = []
    for lang, paras in texts.items():
        if not paras:
            rows_out.append(f"| {lang} | 0 | - | - | - | - | - | - | - |")
            continue
        found = found_eligible = eligible = old = 0
        by_len = defaultdict(lambda: [0, 0])
        units = defaultdict(int)
        for p in paras:
            copy = one_edit(p, rng)
            hashes, unit, n = document_shingles(p, opts)
            ok = hashes.size >= opts.min_shingles_needed(n)
            units[f"{unit}{n}"] += 1
            f, _ = near_pair(p, copy, opts, bands, rows, template)
            found += f
            by_len[len(p) >= 250][0] += f
            by_len[len(p) >= 250][1] += 1
            eligible += ok
            found_eligible += f and ok
            old += old_found(p, copy, opts, bands, rows, template)
        m = len(paras)
        median = sorted(len(p) for p in paras)[m // 2]
        rec_el = f"{found_eligible / eligible:.3f}" if eligible else "-"
        rows_out.append(f"| {lang} | {m} | {median} | {', '.join(f'{k} {v}' for k, v in sorted(units.items()))} | "
                        f"{eligible / m:.2f} | {rec_el} | {found / m:.3f} | {_share(by_len[False])} | {_share(by_len[True])} | {old / m:.3f} |")

    symbol_texts = [t for pair in SYMBOL_PAIRS for t in pair]
    symbol_merged = merged_pairs(symbol_texts, opts, bands, rows, template)
    subjects = catalog_subjects()
    notices = [s.replace("@UNIT@", u) for s in subjects for u in ("foo.service", "bar.service")]
    notices = sorted(set(notices))
    notice_merged = merged_pairs(notices, opts, bands, rows, template)
    para_lines, examples = [], []
    for lang, paras in texts.items():
        merged = merged_pairs(paras, opts, bands, rows, template)
        npairs = len(paras) * (len(paras) - 1) // 2
        para_lines.append(f"{lang}: {len(merged)} of {npairs}")
        for a, b, kind, sim in merged[:2]:
            examples.append(f"  - {lang} {kind} J={sim:.2f}: `{' '.join(paras[a].split())[:70]}` / `{' '.join(paras[b].split())[:70]}`")

    cmd = "python bench/dedup_multilingual.py" + (f" --per-language {args.per_language}" if args.per_language != 120 else "") \
        + (f" --min-shingles {args.min_shingles}" if args.min_shingles else "")
    text = "\n".join([
        f"\n## Dedup across languages: one-character edits and pairs that must stay apart ({time.strftime('%Y-%m-%d')})\n",
        f"Command: `{cmd}`. Paragraphs of 100-500 characters from the vim tutor, systemd catalogs and GnuPG help "
        "on this machine (Thai: the Thai .mo translations joined into paragraphs), at most "
        f"{args.per_language} per language, each with one copy carrying one substituted, deleted or inserted character. "
        f"Defaults: threshold {opts.threshold}, {bands} bands x {rows} rows, shingle_unit auto, exact verification. "
        "`eligible`: share of paragraphs with at least n(1+t)/(1-t) shingles (shorter ones are exact-only). "
        "`before`: the previous shingling (5-grams of whitespace/\\w+ words, no minimum).",
        machine_line(),
        "",
        "| language | paragraphs | median chars | shingles used | eligible | recall (eligible) | recall (all) | 100-249 chars | 250-500 chars | recall before (all) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
        *rows_out,
        "",
        f"- Code/math/symbol pairs ({len(SYMBOL_PAIRS)}: `x = y + 1`/`x = y - 1`, `a > b`/`a < b`, `C`/`C++`, `i++`/`i--`, "
        f"`x²`/`x2`, `&&`/`||`, `你好！`/`你好？`, `/`/`*`, `==`/`!=`, `H₂O`/`H2O`): {len(symbol_merged)} merged "
        f"(precision {'1.0' if not symbol_merged else f'{1 - len(symbol_merged) / len(SYMBOL_PAIRS):.2f}'}).",
        f"- systemd catalog subjects in every language, each for two units ({len(notices)} short templated notices): "
        f"{len(notice_merged)} pairs merged.",
        f"- Distinct paragraphs merged (all pairs within a language; each merge is a pair at or above the "
        f"threshold, i.e. a real near duplicate in the source files): {'; '.join(para_lines)}.",
        *examples,
        f"- Wall time {time.time() - started:.1f} s.",
        "",
    ])
    if args.no_write:
        print(text)
    else:
        append_results(str(ROOT / "bench" / "RESULTS.md"), text)


if __name__ == "__main__":
    main()
