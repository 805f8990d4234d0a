"""A labelled multilingual benchmark corpus from the real translated text on this machine.

    python bench/multilingual_corpus.py --out bench/data/multilingual   # corpus.jsonl, labels.jsonl, summary.json

Sources (whatever of them this machine has; the summary says what was found):
- vim tutor translations: /usr/share/vim/vim*/tutor/tutor[.<lang>].utf-8, one document per lesson;
- man pages and their translations: /usr/share/man/[<lang>/]man*/*.gz, roff macros stripped;
- systemd message catalogs: /usr/lib/systemd/catalog/systemd[.<lang>].catalog, one per message;
- GnuPG help: /usr/share/gnupg/help[.<lang>].txt, one document per help item group;
- gettext catalogs: /usr/share/locale/<lang>/LC_MESSAGES/*.mo (msgstr texts in the language's
  script, 25 messages per document) — the only source here for Thai, Arabic, Hebrew and Hindi;
- code: the running CPython's standard library (.py files), one function or class per document.

Planted on top, with the truth in labels.jsonl (id -> lang, kind good/junk, duplicate group):
- junk per language: random letters of the script in lines ending with its terminal punctuation,
  mojibake (a real document's UTF-8 bytes decoded as cp1252), one token repeated;
- duplicates: exact copies and one-character edits per language (`duplicate_of`);
- pairs that must NOT be merged: code, math and symbol texts that differ in one operator, and
  distinct short messages from one template (`distinct_from` / `template`).

Deterministic: sorted file lists and one seeded random.Random; same machine, same seed, same bytes.
"""
from __future__ import annotations

import argparse
import gettext
import glob
import gzip
import json
import os
import random
import re
import sys
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmdata.scripts import dominant_script, words  # noqa: E402

#: language -> (locale folder names, the script its text must be in)
LANGS = {
    "en": ((), "latin"),
    "zh": (("zh_CN", "zh_TW"), "han"),
    "ja": (("ja",), "kana"),
    "ko": (("ko",), "hangul"),
    "th": (("th",), "thai"),
    "ar": (("ar",), "arabic"),
    "he": (("he",), "hebrew"),
    "hi": (("hi",), "devanagari"),
    "ru": (("ru",), "cyrillic"),
}
#: good documents wanted per language (fewer where the machine has less)
TARGET = {"en": 600, "zh": 80, "ja": 60, "ko": 50, "ru": 50, "th": 30, "ar": 30, "he": 30, "hi": 30, "code": 100}
TUTOR = {"en": ("tutor",), "zh": ("tutor.zh_cn.utf-8", "tutor.zh_tw.utf-8"), "ja": ("tutor.ja.utf-8",),
         "ko": ("tutor.ko.utf-8",), "ru": ("tutor.ru.utf-8",)}
MAX_CHARS = 8000
MIN_CHARS = 200


# ---------------------------------------------------------------- readers of each source


def _roff_to_text(src: str) -> str:
    """Man page source -> plain text: comments and layout requests dropped, macro arguments and
    font escapes reduced to their text (enough for a corpus; groff would be slower)."""
    out = []
    for line in src.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\}')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            m = re.match(r"[.'](\w+)\s*(.*)", line)
            if not m or m.group(1) in {"TH", "so", "pc", "ds", "de", "nr", "ie", "el", "if", "ad", "na", "nh", "hy", "in", "ti", "ft", "ps", "vs", "ta", "ne", "sp", "br", "PP", "LP", "P", "IP", "TP", "RS", "RE", "fi", "nf", "EX", "EE", "ll", "ce", "ig", "..", "PD", "UC"}:
                if m and m.group(1) == "IP" and m.group(2):
                    out.append(m.group(2).strip('"'))
                continue
            line = m.group(2).replace('"', "")
        line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)
        line = re.sub(r"\\\*(\[[^\]]*\]|\(..|.)", "", line)
        line = line.replace("\\(em", "\u2014").replace("\\(en", "\u2013").replace("\\(co", "\u00a9")
        line = re.sub(r"\\\(..", "", line)
        line = line.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "").replace("\\ ", " ").replace("\\|", "").replace("\\c", "")
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _cap(text: str) -> str:
    """At most MAX_CHARS, cut at a paragraph or line boundary."""
    if len(text) <= MAX_CHARS:
        return text
    cut = text.rfind("\n\n", 0, MAX_CHARS)
    if cut < MAX_CHARS // 2:
        cut = text.rfind("\n", 0, MAX_CHARS)
    return text[: cut if cut > 0 else MAX_CHARS].rstrip()


def tutor_docs(lang: str) -> Iterator[tuple[str, str]]:
    for d in sorted(glob.glob("/usr/share/vim/vim*/tutor")):
        for name in TUTOR.get(lang, ()):
            path = os.path.join(d, name)
            if not os.path.exists(path):
                continue
            text = open(path, encoding="utf-8", errors="strict").read()
            parts = re.split(r"\n(?=[~=]{10,}\n)", text)
            for i, part in enumerate(parts):
                part = re.sub(r"^[~=]{10,}\n", "", part).strip()
                if len(part) >= MIN_CHARS:
                    yield f"{path}#{i}", _cap(part)


def man_docs(lang: str) -> Iterator[tuple[str, str]]:
    folders = [f"/usr/share/man/{loc}" for loc in LANGS[lang][0]] if lang != "en" else ["/usr/share/man"]
    for folder in folders:
        for path in sorted(glob.glob(f"{folder}/man[1-8]/*.gz")):
            try:
                src = gzip.open(path).read().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if src.lstrip().startswith(".so "):
                continue
            text = _roff_to_text(src)
            if len(text) >= MIN_CHARS:
                yield path, _cap(text)


def catalog_docs(lang: str) -> Iterator[tuple[str, str]]:
    names = ["systemd.catalog"] if lang == "en" else [f"systemd.{loc}.catalog" for loc in LANGS[lang][0] + (lang,)]
    for name in names:
        path = f"/usr/lib/systemd/catalog/{name}"
        if not os.path.exists(path):
            continue
        entries = re.split(r"\n(?=-- [0-9a-f]{32})", open(path, encoding="utf-8").read())
        for i, entry in enumerate(entries):
            body = "\n".join(ln for ln in entry.splitlines() if not re.match(r"(-- [0-9a-f]{32}|[A-Z][\w-]*: )", ln)).strip()
            if len(body) >= MIN_CHARS:
                yield f"{path}#{i}", _cap(body)


def gnupg_docs(lang: str) -> Iterator[tuple[str, str]]:
    names = ["help.txt"] if lang == "en" else [f"help.{loc}.txt" for loc in LANGS[lang][0] + (lang,)]
    for name in names:
        path = f"/usr/share/gnupg/{name}"
        if not os.path.exists(path):
            continue
        items = re.split(r"\n(?=\.[\w.]+\n)", open(path, encoding="utf-8").read())
        body = [re.sub(r"^\.[\w.]*\n?", "", it).strip() for it in items]
        body = ["\n".join(ln for ln in b.splitlines() if ln.strip() != ".").strip() for b in body if not b.startswith("#")]
        body = [b for b in body if b]
        for i in range(0, len(body), 6):
            text = "\n\n".join(body[i : i + 6])
            if len(text) >= MIN_CHARS:
                yield f"{path}#{i}", _cap(text)


def mo_docs(lang: str, per_doc: int = 25) -> Iterator[tuple[str, str]]:
    if lang == "en":
        return
    script = LANGS[lang][1]
    for loc in LANGS[lang][0] + ((lang,) if lang not in LANGS[lang][0] else ()):
        for path in sorted(glob.glob(f"/usr/share/locale/{loc}/LC_MESSAGES/*.mo")):
            if os.path.basename(path).startswith("iso_"):
                continue  # lists of country and language names, not prose
            try:
                with open(path, "rb") as f:
                    catalog = gettext.GNUTranslations(f)._catalog  # msgid -> msgstr
            except Exception:  # a catalog Python cannot read is not a document
                continue
            msgs = []
            for key, value in sorted(catalog.items(), key=lambda kv: str(kv[0])):
                if key == "" or not isinstance(value, str):
                    continue
                value = value.strip()
                if len(value) >= 8 and dominant_script(value) == script:
                    msgs.append(value)
            for i in range(0, len(msgs) - per_doc + 1, per_doc):
                text = "\n".join(msgs[i : i + per_doc])
                if len(text) >= MIN_CHARS:
                    yield f"{path}#{i}", _cap(text)


def code_docs() -> Iterator[tuple[str, str]]:
    """Top-level functions and classes of the standard library (20-120 lines each)."""
    lib = os.path.dirname(os.__file__)
    for path in sorted(glob.glob(f"{lib}/*.py")):
        try:
            src = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError):
            continue
        for m in re.finditer(r"^(?:def|class) \w+.*?(?=^\S)", src, re.M | re.S):
            block = m.group().rstrip()
            if 20 <= block.count("\n") <= 120:
                yield f"{path}:{src.count(chr(10), 0, m.start()) + 1}", block


# ---------------------------------------------------------------- planted junk and pairs

#: letters to draw random junk from, per language, and the mark its lines end with
ALPHABET = {
    "en": ("abcdefghijklmnopqrstuvwxyz", "."),
    "zh": ("".join(chr(c) for c in range(0x4E00, 0x9FA6)), "\u3002"),
    "ja": ("".join(chr(c) for c in range(0x3041, 0x3097)) + "".join(chr(c) for c in range(0x30A1, 0x30FB)) + "".join(chr(c) for c in range(0x4E00, 0x9FA6, 250)), "\u3002"),  # kana-heavy, as Japanese is
    "ko": ("".join(chr(c) for c in range(0xAC00, 0xD7A4)), "."),
    "th": ("".join(chr(c) for c in range(0x0E01, 0x0E2F)) + "\u0e30\u0e32\u0e34\u0e35\u0e36\u0e37\u0e38\u0e39\u0e40\u0e41\u0e42\u0e43\u0e44\u0e48\u0e49", ""),
    "ar": ("".join(chr(c) for c in range(0x0621, 0x064B)), "\u061f"),
    "he": ("".join(chr(c) for c in range(0x05D0, 0x05EB)), "."),
    "hi": ("".join(chr(c) for c in range(0x0905, 0x0915)) + "".join(chr(c) for c in range(0x0915, 0x0939)) + "\u093e\u093f\u0940\u0941\u0942\u0947\u0948\u094b\u094c\u0902", "\u0964"),
    "ru": ("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "."),
}
SPACELESS = {"zh", "ja", "th"}
#: a frequent word per language, for the repeated-token junk
COMMON = {"en": "the", "zh": "的", "ja": "です", "ko": "있습니다", "th": "และ", "ar": "في", "he": "של", "hi": "के", "ru": "что"}


def random_script_text(rng: random.Random, lang: str) -> str:
    letters, end = ALPHABET[lang]
    lines = []
    for _ in range(rng.randint(6, 16)):
        if lang in SPACELESS:
            line = "".join(rng.choice(letters) for _ in range(rng.randint(12, 40)))
            if lang == "th":  # Thai separates phrases with spaces
                line = " ".join(line[i : i + rng.randint(6, 14)] for i in range(0, len(line), 10))
        else:
            line = " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(rng.randint(5, 12)))
        lines.append(line + end)
    return "\n".join(lines)


def mojibake(text: str) -> str:
    """UTF-8 bytes read as cp1252 (bytes cp1252 leaves undefined read as Latin-1)."""
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in text.encode("utf-8"))


def repeated_token(rng: random.Random, lang: str) -> str:
    sep = "" if lang in SPACELESS and lang != "th" else " "
    return "\n".join(sep.join([COMMON[lang]] * rng.randint(15, 30)) for _ in range(rng.randint(8, 15)))


def one_char_edit(text: str, rng: random.Random, script: str) -> str:
    """Replace one letter in the middle half of `text` by another letter of the same script."""
    positions = [i for i in range(len(text) // 4, 3 * len(text) // 4) if text[i].isalpha() and dominant_script(text[i]) == script]
    if not positions:
        positions = [i for i in range(len(text)) if text[i].isalpha()]
    i = rng.choice(positions)
    pool = [c for c in text if c.isalpha() and c != text[i] and dominant_script(c) == dominant_script(text[i])]
    return text[:i] + (rng.choice(pool) if pool else "x") + text[i + 1 :]


#: (text, the same text with one operator changed): must never be merged
OPERATOR_PAIRS = [
    ("if x < y:\n    return x\nreturn y\n", "if x > y:\n    return x\nreturn y\n"),
    ("total = price + tax\nprint(total)\n", "total = price - tax\nprint(total)\n"),
    ("while i <= n:\n    s += i\n    i += 1\n", "while i >= n:\n    s += i\n    i += 1\n"),
    ("assert a == b, 'mismatch'\n", "assert a != b, 'mismatch'\n"),
    ("flags = READ | WRITE\nopen_file(path, flags)\n", "flags = READ & WRITE\nopen_file(path, flags)\n"),
    ("mask = value << 4\n", "mask = value >> 4\n"),
    ("ok = ready && !failed;\n", "ok = ready || !failed;\n"),
    ("area = width * height\n", "area = width / height\n"),
    ("rem = count % size\n", "rem = count // size\n"),
    ("x² + y² ≤ r²", "x² + y² ≥ r²"),
    ("∀ε > 0 ∃δ > 0: |x − a| < δ ⇒ |f(x) − f(a)| < ε", "∃ε > 0 ∀δ > 0: |x − a| < δ ⇒ |f(x) − f(a)| < ε"),
    ("A ⊆ B ∧ B ⊆ A ⇒ A = B", "A ⊆ B ∨ B ⊆ A ⇒ A = B"),
    ("f: X → Y", "f: X ← Y"),
    ("P(A ∩ B) = P(A) · P(B)", "P(A ∪ B) = P(A) · P(B)"),
    ("温度 ≥ 30 ℃ 时启动风扇。", "温度 ≤ 30 ℃ 时启动风扇。"),
    ("価格 × 数量 = 合計", "価格 ÷ 数量 = 合計"),
    ("$ ls -la | grep '^d'", "$ ls -la > grep '^d'"),
    ("x = (a + b) * c;", "x = (a + b) + c;"),
    ("SELECT * FROM t WHERE n > 10;", "SELECT * FROM t WHERE n < 10;"),
    ("if (p != NULL) free(p);", "if (p == NULL) free(p);"),
]

#: short messages from one template: each instance is a distinct message
TEMPLATES = {
    "en": ("Disk {dev} is {pct}% full.", lambda r: {"dev": f"/dev/sd{r.choice('abcd')}{r.randint(1, 9)}", "pct": r.randint(50, 99)}),
    "en2": ("User {user} logged in from {ip} at {h:02d}:{m:02d}.", lambda r: {"user": r.choice(["alice", "bob", "carol", "dave", "erin"]), "ip": f"10.0.{r.randint(0, 255)}.{r.randint(1, 254)}", "h": r.randint(0, 23), "m": r.randint(0, 59)}),
    "zh": ("磁盘 {dev} 已使用 {pct}%。", lambda r: {"dev": f"/dev/sd{r.choice('abcd')}{r.randint(1, 9)}", "pct": r.randint(50, 99)}),
    "zh2": ("用户 {user} 于 {h:02d}:{m:02d} 从 {ip} 登录。", lambda r: {"user": r.choice(["张伟", "王芳", "李娜", "刘洋", "陈静"]), "ip": f"10.0.{r.randint(0, 255)}.{r.randint(1, 254)}", "h": r.randint(0, 23), "m": r.randint(0, 59)}),
    "ja": ("ファイル {name} を {n} 行読み込みました。", lambda r: {"name": r.choice(["a.txt", "b.csv", "log.json", "data.bin"]), "n": r.randint(10, 9999)}),
    "ru": ("Файл {name} содержит {n} строк.", lambda r: {"name": r.choice(["a.txt", "b.csv", "log.json", "data.bin"]), "n": r.randint(10, 9999)}),
}


#: operator -> the operator that replaces it in a code pair
FLIP = {" < ": " > ", " > ": " < ", " + ": " - ", " - ": " + ", " == ": " != ", " != ": " == ", " <= ": " >= ", " >= ": " <= "}


def flip_operator(code: str) -> Optional[str]:
    """`code` with its first binary operator outside the docstring replaced by its opposite."""
    body_from = code.rfind('"""') + 3 if code.count('"""') >= 2 else 0
    hits = [(code.find(op, body_from), op) for op in FLIP if code.find(op, body_from) >= 0]
    if not hits:
        return None
    i, op = min(hits)
    return code[:i] + FLIP[op] + code[i + len(op) :]


# ---------------------------------------------------------------- assembly


def collect(lang: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """(source kind, origin, text) good documents for `lang`, sampled to TARGET[lang]."""
    found: list[tuple[str, str, str]] = []
    if lang == "code":
        found = [("cpython", o, t) for o, t in code_docs()]
    else:
        for kind, reader in (("vim-tutor", tutor_docs), ("man", man_docs), ("systemd-catalog", catalog_docs), ("gnupg-help", gnupg_docs), ("gettext", mo_docs)):
            docs = [(kind, o, t) for o, t in reader(lang)]
            if lang == "en" and kind == "man":
                docs = docs[:: max(1, len(docs) // 550)]
            found += docs
        script = LANGS[lang][1]
        found = [d for d in found if dominant_script(d[2]) == script]
    seen: set[str] = set()
    unique = []
    for d in found:  # the same text from two sources (zh_CN and zh_TW share strings) once
        if d[2] not in seen:
            seen.add(d[2])
            unique.append(d)
    rng.shuffle(unique)
    # every source kind gets a share before the rest is filled in order
    by_kind: dict[str, list] = {}
    for d in unique:
        by_kind.setdefault(d[0], []).append(d)
    chosen: list = []
    while len(chosen) < TARGET[lang] and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(chosen) < TARGET[lang]:
                chosen.append(by_kind[kind].pop())
    return chosen


def build(seed: int = 0) -> tuple[list[dict], list[dict], dict]:
    rng = random.Random(seed)
    records: list[dict] = []
    labels: list[dict] = []

    def add(rid: str, text: str, source: str, label: dict) -> None:
        records.append({"id": rid, "text": text, "source": source, "meta": {}})
        labels.append({"id": rid, **label})

    good: dict[str, list[dict]] = {}
    for lang in [*LANGS, "code"]:
        for i, (kind, origin, text) in enumerate(collect(lang, rng)):
            rid = f"{lang}-{i:04d}"
            add(rid, text, f"{kind}:{origin}", {"label": "good", "lang": lang, "kind": "good"})
            good.setdefault(lang, []).append(records[-1])
    # junk per language
    for lang in LANGS:
        for j in range(12):
            add(f"junk-random-{lang}-{j:02d}", random_script_text(rng, lang), "planted", {"label": "junk:random_script", "lang": lang, "kind": "junk"})
        if lang != "en":
            for j, src in enumerate(rng.sample(good[lang], min(6, len(good[lang])))):
                add(f"junk-mojibake-{lang}-{j:02d}", mojibake(src["text"]), "planted", {"label": "junk:mojibake", "lang": lang, "kind": "junk"})
        for j in range(3):
            add(f"junk-repeat-{lang}-{j:02d}", repeated_token(rng, lang), "planted", {"label": "junk:repeated_token", "lang": lang, "kind": "junk"})
    # duplicates: exact copies and one-character edits of long-enough documents
    for lang in [*LANGS, "code"]:
        script = LANGS[lang][1] if lang != "code" else "latin"
        pool = [r for r in good[lang] if len(words(r["text"])) >= 100] or good[lang]
        n_edit = 8 if lang in ("zh", "ja", "th", "en") else 3
        for j, src in enumerate(rng.sample(pool, min(3, len(pool)))):
            add(f"dup-exact-{lang}-{j:02d}", src["text"], src["source"], {"label": "good:exact_dup", "lang": lang, "kind": "good", "duplicate_of": src["id"], "group": src["id"]})
        for j, src in enumerate(rng.sample(pool, min(n_edit, len(pool)))):
            add(f"dup-edit-{lang}-{j:02d}", one_char_edit(src["text"], rng, script), src["source"], {"label": "good:near_dup", "lang": lang, "kind": "good", "duplicate_of": src["id"], "group": src["id"], "edit": "one_char"})
    # pairs that differ in one operator: distinct documents (written ones, and standard-library
    # functions not among the good documents, with one operator flipped)
    used = {r["text"] for r in good.get("code", [])}
    spare = [t for _, t in code_docs() if t not in used]
    code_pairs = []
    for text in rng.sample(spare, min(60, len(spare))):
        flipped = flip_operator(text)
        if flipped and len(code_pairs) < 15:
            code_pairs.append((text, flipped))
    for j, (a, b) in enumerate(OPERATOR_PAIRS + code_pairs):
        lang = "zh" if dominant_script(a) == "han" else "ja" if dominant_script(a) == "kana" else "code"
        add(f"op-{j:02d}-a", a, "planted", {"label": "good:operator_pair", "lang": lang, "kind": "good", "distinct_from": f"op-{j:02d}-b"})
        add(f"op-{j:02d}-b", b, "planted", {"label": "good:operator_pair", "lang": lang, "kind": "good", "distinct_from": f"op-{j:02d}-a"})
    # distinct messages from one template
    for name, (template, fill) in TEMPLATES.items():
        lang = name.rstrip("0123456789")
        made: set[str] = set()
        while len(made) < 4:
            made.add(template.format(**fill(rng)))
        for j, text in enumerate(sorted(made)):
            add(f"tmpl-{name}-{j}", text, "planted", {"label": "good:template", "lang": lang, "kind": "good", "template": name})
    order = list(range(len(records)))
    rng.shuffle(order)
    records = [records[i] for i in order]
    labels = [labels[i] for i in order]
    summary: dict = {}
    for lab in labels:
        key = f"{lab['lang']}:{lab['label']}"
        summary[key] = summary.get(key, 0) + 1
    return records, labels, dict(sorted(summary.items()))


def write(out: str, seed: int = 0) -> dict:
    """Write corpus.jsonl, labels.jsonl and summary.json into `out`; returns the summary."""
    records, labels, summary = build(seed)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "labels.jsonl"), "w", encoding="utf-8") as f:
        for lab in labels:
            f.write(json.dumps(lab, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    return summary


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "bench" / "data" / "multilingual"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    summary = write(args.out, args.seed)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
