"""Calibrate and check `junk:random_letters` (llmdata.junk.letter_dependence) on this machine.

    python bench/junk_random_letters.py            # real documents per script + generated junk

Real text: every document the multilingual corpus readers find (vim tutors, man pages, systemd
catalogs, GnuPG help, gettext catalogs in 10-message documents, CPython functions and classes),
for en zh ja ko th ar he hi ru and code, and the classical Chinese of tests/fixtures/classical_zh.jsonl
(Tang poems, the Thousand Character Classic, the Analects, the Daodejing). The rule's false
positives are the real documents it rejects. Junk: random letters of each script (uniform over its
letters, as words of 2-9 letters for scripts that use spaces and as spaceless lines for Han, kana
and Thai), 200 documents per script, of 120-1,500 letters; recall is the share rejected. Han comes
uniformly from the whole block, from the common sets (GB 2312 level 1, Big5 frequent, JIS level 1:
7,174 hanzi), from GB 2312 level 1 alone (3,755), and with the character frequencies of this
machine's Chinese documents (letters independent, like shuffled Chinese: what `han_reuse` lets
through). The Han-dominant real documents' `han_reuse` (how far their characters repeat beyond a
uniform draw from GB 2312 level 1, in standard deviations) is reported beside the generated Han's. The spelling rule (llmdata.junk.misspelt, Thai
and Devanagari marks where the script never writes them) is reported beside it: how many marks
each real document breaks, and the recall on short generated Thai and Devanagari (40-170 letters).
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import multilingual_corpus as mc  # noqa: E402
from llmdata.junk import (MAX_LETTER_DEPENDENCE, MAX_LETTER_REPEAT_RATIO, MIN_HAN_REUSE, MIN_HAN_SHARE,  # noqa: E402
                          MIN_LETTER_PAIRS, MIN_MISSPELT, MIN_MISSPELT_RATIO, _decode_range, common_cjk, junk_reason,
                          junk_scores)
from llmdata.scripts import dominant_script  # noqa: E402

RANGES = {
    "latin": ("abcdefghijklmnopqrstuvwxyz", True),
    "cyrillic": ("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", True),
    "thai": ("".join(chr(c) for c in range(0x0E01, 0x0E3B)) + "".join(chr(c) for c in range(0x0E40, 0x0E4E)), False),
    "arabic": ("".join(chr(c) for c in range(0x0621, 0x064B)), True),
    "hebrew": ("".join(chr(c) for c in range(0x05D0, 0x05EB)), True),
    "devanagari": ("".join(chr(c) for c in range(0x0905, 0x0939)) + "\u093e\u093f\u0940\u0941\u0942\u0947\u0948\u094b\u094c\u0902\u094d", True),
    "han (all)": ("".join(chr(c) for c in range(0x4E00, 0x9FA6)), False),
    "han (common sets)": (None, False),
    "hangul": ("".join(chr(c) for c in range(0xAC00, 0xD7A4)), True),
    "kana": ("".join(chr(c) for c in range(0x3041, 0x3097)) + "".join(chr(c) for c in range(0x30A1, 0x30FB)), False),
    # rows added with han_reuse, each from its own seeded generator so the rows above keep their documents
    "han (GB2312 L1)": ("".join(sorted(_decode_range("gb2312", range(0xB0, 0xD8), list(range(0xA1, 0xFF))))), False),
    "han (2,000 of GB2312 L1)": ("".join(sorted(random.Random(2000).sample(sorted(_decode_range("gb2312", range(0xB0, 0xD8), list(range(0xA1, 0xFF)))), 2000))), False),
    "han (zh frequencies)": ("zh", False),  # weighted by the character counts of this machine's zh documents
}
EXTRA = ("han (GB2312 L1)", "han (2,000 of GB2312 L1)", "han (zh frequencies)")
CLASSICAL = ROOT / "tests" / "fixtures" / "classical_zh.jsonl"


def is_han_dominant(scores: dict) -> bool:
    return scores["han_share"] >= MIN_HAN_SHARE


def real_docs() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for o, t in mc.code_docs():
        out["code"].append(t)
    for lang in mc.LANGS:
        for reader in (mc.tutor_docs, mc.man_docs, mc.catalog_docs, mc.gnupg_docs):
            out[lang] += [t for _, t in reader(lang)]
        out[lang] += [t for _, t in mc.mo_docs(lang, per_doc=10)]
    out["classical zh (fixture)"] = [json.loads(line)["text"] for line in CLASSICAL.read_text(encoding="utf-8").splitlines()]
    return out


def junk_doc(rng: random.Random, kind: str, low: int = 120, high: int = 1500,
             weights: dict[str, int] | None = None) -> str:
    letters, spaced = RANGES[kind]
    if letters is None:
        letters = "".join(sorted(c for c in common_cjk() if "\u4e00" <= c <= "\u9fff"))
    if letters == "zh":
        letters, cum = list(weights), list(itertools.accumulate(weights.values()))
        draw = lambda k: "".join(rng.choices(letters, cum_weights=cum, k=k))  # noqa: E731
    else:
        draw = lambda k: "".join(rng.choice(letters) for _ in range(k))  # noqa: E731
    total = rng.randint(low, high)
    lines, n = [], 0
    while n < total:
        if spaced:
            words = [draw(rng.randint(2, 9)) for _ in range(rng.randint(4, 12))]
            line = " ".join(words)
        else:
            line = draw(rng.randint(12, 60))
        n += sum(c.isalpha() for c in line)
        lines.append(line + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--junk", type=int, default=200, help="generated documents per script")
    args = ap.parse_args(argv)
    print(f"rule: letter_dependence >= {MAX_LETTER_DEPENDENCE} and letter_repeat_ratio <= {MAX_LETTER_REPEAT_RATIO} with >= {MIN_LETTER_PAIRS} letter pairs\n")
    print(f"spelling rule (Thai, Devanagari): >= {MIN_MISSPELT} misspelt marks and >= {MIN_MISSPELT_RATIO} of those checked, any length\n")
    print(f"kept as language: Han share of letters >= {MIN_HAN_SHARE} and han_reuse >= {MIN_HAN_REUSE}\n")
    print("| real text | documents | judged (>= pairs) | rejected | max letter_dependence | 99th pct | median | max misspelt | docs with any"
          " | Han-dominant judged | of them random by pairs | min han_reuse |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    real = real_docs()
    for lang, docs in real.items():
        docs = list(dict.fromkeys(docs))
        scores = [junk_scores(t, t) for t in docs]
        judged = sorted(s["letter_dependence"] for s in scores if s["letter_pairs"] >= MIN_LETTER_PAIRS)
        rej = [t for t, s in zip(docs, scores) if junk_reason(s) == "junk:random_letters"]
        spell = [int(s["misspelt"]) for s in scores]
        han = [s for s in scores if s["letter_pairs"] >= MIN_LETTER_PAIRS and is_han_dominant(s)]
        by_pairs = sum(junk_reason({**s, "han_share": 0.0}) == "junk:random_letters" for s in han)  # without han_reuse
        min_reuse = f"{min(s['han_reuse'] for s in han):.1f}" if han else "-"
        if judged:
            print(f"| {lang} | {len(docs)} | {len(judged)} | {len(rej)} | {judged[-1]:.3f} | {judged[int(0.99 * (len(judged) - 1))]:.3f} | {judged[len(judged) // 2]:.3f}"
                  f" | {max(spell)} | {sum(b > 0 for b in spell)} | {len(han)} | {by_pairs} | {min_reuse} |")
        for t in rej[:3]:
            print("   rejected:", repr(t[:200]))
    rng = random.Random(0)
    zh_counts: dict[str, int] = defaultdict(int)
    for t in real["zh"]:
        for c in t:
            if "\u4e00" <= c <= "\u9fff":
                zh_counts[c] += 1
    print("\n| generated junk | documents | judged (>= pairs) | junk:random_letters | of judged | any junk rule | min letter_dependence"
          " | max letter_repeat_ratio | max han_reuse | by the pair test alone |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    zh_weights = dict(sorted(zh_counts.items()))
    for kind in RANGES:
        r = random.Random(kind) if kind in EXTRA else rng
        docs = [junk_doc(r, kind, weights=zh_weights) for _ in range(args.junk)]
        scores = [junk_scores(t, t) for t in docs]
        rl = sum(junk_reason({**s, "cjk_letters": 0.0}) == "junk:random_letters" for s in scores)  # this rule alone
        anyr = sum(junk_reason(s) is not None for s in scores)
        judged = sum(s["letter_pairs"] >= MIN_LETTER_PAIRS for s in scores)
        dep = min(s["letter_dependence"] for s in scores)
        rep = max(s["letter_repeat_ratio"] for s in scores)
        reuse = f"{max(s['han_reuse'] for s in scores):.1f}" if any(s["han_share"] for s in scores) else "-"
        pairs = sum(junk_reason({**s, "cjk_letters": 0.0, "han_share": 0.0}) == "junk:random_letters" for s in scores)  # the rule before han_reuse
        print(f"| {kind} ({dominant_script(docs[0])}) | {len(docs)} | {judged} | {rl} ({100 * rl / len(docs):.1f}%) | {100 * rl / max(judged, 1):.1f}%"
              f" | {anyr} ({100 * anyr / len(docs):.1f}%) | {dep:.3f} | {rep:.2f} | {reuse} | {pairs} |")
    print("\nShort generated junk (40-170 letters, below the pairs letter_dependence needs), Thai and Devanagari:\n")
    print("| generated junk | documents | under the pairs minimum | junk:random_letters | min misspelt |")
    print("|---|---:|---:|---:|---:|")
    for kind in ("thai", "devanagari"):
        docs = [junk_doc(rng, kind, 40, 170) for _ in range(args.junk)]
        scores = [junk_scores(t, t) for t in docs]
        short = [s for s in scores if s["letter_pairs"] < MIN_LETTER_PAIRS]
        rl = sum(junk_reason(s) == "junk:random_letters" for s in short)
        print(f"| {kind} | {len(docs)} | {len(short)} | {rl} ({100 * rl / max(len(short), 1):.1f}% of those) | {min(int(s['misspelt']) for s in short)} |")


if __name__ == "__main__":
    main()
