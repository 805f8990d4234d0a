"""The bundled demo corpus, built deterministically from text every Python installation carries.

Good documents are the standard library's docstrings (read with `ast`, never imported, so no
module's import side effects run) and the `pydoc_data` help topics. Into them the generator plants
the noise a real crawl has, each piece labelled so the stages can be scored against it:
exact and near duplicates, junk documents, and bad records that must be quarantined.
"""
from __future__ import annotations

import ast
import gzip
import inspect
import json
import math
import os
import random
import string
import sysconfig
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator, Optional

_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo", "ensurepip"}
_MAX_DOC_CHARS = 1800


@dataclass
class Document:
    text: str
    source: str
    kind: str
    meta: dict = field(default_factory=dict)


def _signature(node: ast.AST) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        try:
            return f"{node.name}({ast.unparse(node.args)})"
        except Exception:
            return f"{node.name}(...)"
    return getattr(node, "name", "")


def _module_sections(tree: ast.Module) -> list[str]:
    sections = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("__"):
            doc = ast.get_docstring(node)
            if not doc:
                continue
            head = ("class " if isinstance(node, ast.ClassDef) else "def ") + _signature(node)
            parts = [f"{head}\n\n{inspect.cleandoc(doc)}"]
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and (not sub.name.startswith("_") or sub.name == "__init__"):
                        sdoc = ast.get_docstring(sub)
                        if sdoc:
                            parts.append(f"    {node.name}.{_signature(sub)}\n\n{inspect.cleandoc(sdoc)}")
            sections.append("\n\n".join(parts))
    return sections


def stdlib_documents() -> Iterator[Document]:
    """Module manuals from the standard library's docstrings, split into documents of a few KB."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    for path in sorted(paths):
        rel = os.path.relpath(path, root)
        module = rel[:-3].replace(os.sep, ".").removesuffix(".__init__")
        try:
            with open(path, "rb") as f:
                source = f.read()
            tree = ast.parse(source)
        except (SyntaxError, ValueError, OSError):
            continue
        n_lines = source.count(b"\n")
        defs = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in tree.body)
        chunks: list[str] = []
        head = ast.get_docstring(tree)
        current = f"{module}\n{'=' * len(module)}\n\n{inspect.cleandoc(head)}" if head else ""
        for section in _module_sections(tree):
            if current and len(current) + len(section) > _MAX_DOC_CHARS:
                chunks.append(current)
                current = f"{module} (continued)\n\n{section}"
            else:
                current = f"{current}\n\n{section}" if current else f"{module}\n\n{section}"
        if current:
            chunks.append(current)
        for part, text in enumerate(chunks):
            if len(text) < 200:
                continue
            meta = {"module": module, "part": part, "n_lines": n_lines, "n_defs": defs, "depth": module.count(".")}
            yield Document(text, f"stdlib:{module}", "docstring", meta)


def pydoc_documents() -> Iterator[Document]:
    """The interpreter's help topics: language reference prose."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = topics[name].strip()
        if len(text) >= 200:
            yield Document(text, f"pydoc:{name}", "topic", {"module": name, "n_lines": text.count("\n"), "depth": 0})


# ---------------------------------------------------------------- planted noise

def near_duplicate(text: str, rng: random.Random, rate: float = 0.03) -> str:
    """A copy with a few word edits (substitute, delete, insert) and sometimes a new header line."""
    lines = text.split("\n")
    out_lines = []
    for line in lines:
        words = line.split(" ")
        new = []
        for w in words:
            r = rng.random()
            if r < rate / 3 and w:
                continue
            if r < 2 * rate / 3 and w:
                new.append(w[::-1] if len(w) > 3 else w.upper())
            else:
                new.append(w)
            if rng.random() < rate / 3:
                new.append(rng.choice(["very", "also", "then", "just", "here"]))
        out_lines.append(" ".join(new))
    out = "\n".join(out_lines)
    if rng.random() < 0.5:
        out = f"Mirror copy, retrieved {rng.randint(2015, 2025)}.\n\n{out}"
    return out


def gibberish(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(8, 40)):
        words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 14))) for _ in range(rng.randint(6, 16))]
        lines.append(" ".join(words))
    return "\n".join(lines)


def repeated_token(rng: random.Random) -> str:
    token = rng.choice(["buy", "click", "lorem", "spam", "hello", "free", "download", "viagra", "best"])
    per_line = rng.randint(5, 20)
    return "\n".join(" ".join([token] * per_line) for _ in range(rng.randint(20, 120)))


def huge_log_dump(rng: random.Random) -> str:
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN"]
    lines = [
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d} {rng.choice(levels)} worker-{rng.randint(0, 64)} batch {rng.randint(0, 10**6)} "
        f"took {rng.random():.3f}s rows={rng.randint(0, 10**5)}"
        for _ in range(rng.randint(12_000, 20_000))
    ]
    return "\n".join(lines)


def huge_blob(rng: random.Random) -> str:
    import base64

    raw = rng.randbytes(rng.randint(300_000, 500_000))
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def tiny(rng: random.Random) -> str:
    return rng.choice(["ok", "Click here", "1", "See above.", "N/A", "thanks!!", "Home | Next", "Loading...", "404", "x"])


def symbol_soup(rng: random.Random) -> str:
    alphabet = "#$%^&*(){}[]<>|\\/~`@+=_-;:!?.,'\"§¤°±"
    return "\n".join("".join(rng.choice(alphabet + " ") for _ in range(rng.randint(40, 100))) for _ in range(rng.randint(5, 30)))


JUNK_MAKERS = {
    "junk:gibberish": (gibberish, 40),
    "junk:repeated_token": (repeated_token, 40),
    "junk:huge_log": (huge_log_dump, 3),
    "junk:huge_blob": (huge_blob, 2),
    "junk:tiny": (tiny, 40),
    "junk:symbol_soup": (symbol_soup, 40),
}


def bad_lines(rng: random.Random, good_ids: list[str]) -> list[tuple[bytes, str]]:
    """Raw jsonl lines that must end in quarantine (or a counted drop), with the expected reason."""
    out: list[tuple[bytes, str]] = []
    for i in range(8):
        line = json.dumps({"id": f"broken-{i}", "text": "A record cut short in transit"})
        out.append((line[: rng.randint(5, len(line) - 2)].encode(), "invalid_json"))
    out.append((b"{'id': 'single-quotes', 'text': 'python repr, not JSON'}", "invalid_json"))
    out.append((b'{"id": "trailing-comma", "text": "x",}', "invalid_json"))
    for i in range(8):
        good = json.dumps({"id": f"latin1-{i}", "text": "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"}, ensure_ascii=False)
        out.append((good.encode("latin-1"), "invalid_utf8"))
    out.append((b'{"id": "bad-bytes", "text": "\xff\xfe\xfd garbage"}', "invalid_utf8"))
    out.append((b'{"id": "lone-surrogate", "text": "half of an emoji \\ud83d and nothing after"}', "invalid_unicode"))
    for i in range(5):
        out.append((json.dumps({"id": f"no-text-{i}", "body": "the text is under another key"}).encode(), "missing_text"))
        out.append((json.dumps({"id": f"null-text-{i}", "text": None}).encode(), "null_text"))
        out.append((json.dumps({"id": f"empty-text-{i}", "text": ""}).encode(), "empty_text"))
        out.append((json.dumps({"id": f"ws-text-{i}", "text": " \n\t  \n"}).encode(), "whitespace_text"))
    for i, value in enumerate([42, 3.5, ["a", "list"], {"nested": "object"}, True, [1, 2]]):
        out.append((json.dumps({"id": f"nonstring-{i}", "text": value}).encode(), "non_string_text"))
    for value in (["not", "an", "object"], "just a string", 17, None):
        out.append((json.dumps(value).encode(), "not_an_object"))
    out.append((json.dumps({"id": ["a", "list"], "text": "An id that is a list is not an id."}).encode(), "invalid_id"))
    for i in range(5):
        dup = rng.choice(good_ids)
        out.append((json.dumps({"id": dup, "text": f"Another document claiming id {dup}, number {i}."}).encode(), "duplicate_id"))
    for _ in range(3):
        out.append((b"", "blank_line"))
    return out


@lru_cache(maxsize=1)
def good_documents() -> tuple[Document, ...]:
    """Parsing the whole standard library takes seconds; do it once per process."""
    return tuple(stdlib_documents()) + tuple(pydoc_documents())


def build_corpus(seed: int = 0, max_docs: Optional[int] = None) -> tuple[list[bytes], list[dict], dict]:
    """All lines of the demo corpus in their final order, the labels, and a summary of what is planted."""
    rng = random.Random(seed)
    docs = list(good_documents())
    rng.shuffle(docs)
    if max_docs:
        docs = docs[:max_docs]
    records: list[dict] = []
    labels: list[dict] = []
    for i, d in enumerate(docs):
        doc_id = f"doc-{i:05d}"
        meta = dict(d.meta, kind=d.kind, seq=i)
        # Crawl time grows with the sequence; 10% of it is lost and interpolated back.
        meta["crawl_ts"] = None if rng.random() < 0.10 else round(1.7e9 + i * 600 + rng.uniform(-60, 60))
        if rng.random() < 0.03:
            meta.pop("n_lines", None)
        if "n_defs" in meta and rng.random() < 0.08:
            meta["n_defs"] = None
        if rng.random() < 0.2:
            meta["rating"] = round(rng.uniform(1, 5), 1)
        if i == 7:
            meta["n_lines"] = math.nan  # NaN is not JSON; the reader turns it into a gap
        records.append({"id": doc_id, "text": d.text, "source": d.source, "meta": meta})
        labels.append({"id": doc_id, "label": "good"})
    n_good = len(records)
    for j in range(max(1, n_good // 20)):
        src = records[rng.randrange(n_good)]
        records.append({**src, "id": f"exact-{j:04d}"})
        labels.append({"id": f"exact-{j:04d}", "label": "good:exact_dup", "duplicate_of": src["id"]})
    for j in range(max(1, n_good // 20)):
        src = records[rng.randrange(n_good)]
        # Edit rates from 0.5% to 4% of words put the copies on both sides of a 0.8 threshold.
        records.append({**src, "id": f"near-{j:04d}", "text": near_duplicate(src["text"], rng, rng.uniform(0.005, 0.04))})
        labels.append({"id": f"near-{j:04d}", "label": "good:near_dup", "duplicate_of": src["id"]})
    scale = max(n_good / 4000, 0.05)
    for label, (maker, count) in JUNK_MAKERS.items():
        for j in range(max(1, round(count * scale)) if "huge" not in label else count):
            jid = f"{label.split(':')[1]}-{j:03d}"
            records.append({"id": jid, "text": maker(rng), "source": "web:crawl", "meta": {"kind": "junk", "seq": n_good + len(labels)}})
            labels.append({"id": jid, "label": label})
    lines: list[tuple[bytes, str]] = [(json.dumps(r, ensure_ascii=False).encode("utf-8"), "ok") for r in records]
    lines += bad_lines(rng, [r["id"] for r in records[:n_good]])
    rng.shuffle(lines)
    summary: dict = {"lines": len(lines)}
    for _, reason in lines:
        if reason != "ok":
            summary[f"bad:{reason}"] = summary.get(f"bad:{reason}", 0) + 1
    for lab in labels:
        summary[lab["label"]] = summary.get(lab["label"], 0) + 1
    return [raw for raw, _ in lines], labels, dict(sorted(summary.items()))


def write_corpus(output: str, seed: int = 0, shards: int = 4, max_docs: Optional[int] = None) -> dict:
    """Write `shard-NNNN.jsonl.gz` files, `labels.jsonl` and `sample_manifest.json` into `output`.

    Gzip headers carry no timestamp, so the same seed gives byte-identical files.
    """
    lines, labels, summary = build_corpus(seed, max_docs)
    os.makedirs(output, exist_ok=True)
    per_shard = math.ceil(len(lines) / shards)
    for s in range(shards):
        path = os.path.join(output, f"shard-{s:04d}.jsonl.gz")
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            for line in lines[s * per_shard : (s + 1) * per_shard]:
                f.write(line + b"\n")
    with open(os.path.join(output, "labels.jsonl"), "w", encoding="utf-8") as f:
        for lab in labels:
            f.write(json.dumps(lab) + "\n")
    return summary
