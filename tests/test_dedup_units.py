"""Dedup building blocks: keys, shingles, LSH parameters, signatures, bucket edges, star steps."""
import json
import random
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmdata.dedup import (
    DedupOptions,
    KeyOptions,
    bucket_edges,
    candidate_probability,
    dedup_key,
    estimated_jaccard,
    exact_key,
    jaccard,
    key_hash,
    large_star,
    lsh_params,
    min_shingles_for,
    minhash_signatures,
    preference_key,
    shingle_strings,
    shingles,
    small_star,
    is_code,
    split_exact,
)
from pipelines.dedup import (
    connected_components,
    document_shingles,
    exact_jaccard,
    minhash_signature,
    minhash_template,
    near_pair,
    shingle_hashes,
)


def test_key_options():
    text = "Café  No. 42,\tOpen!"
    assert dedup_key(text, KeyOptions()) == "café no 42 open"
    assert dedup_key(text, KeyOptions(map_digits=True, remove_accents=True)) == "cafe no 00 open"
    assert dedup_key(text, KeyOptions(lowercase=False, strip_punctuation=False, collapse_whitespace=False)) == text


def test_shingles():
    assert shingles("a b c d", 2) == {b"a b", b"b c", b"c d"}
    assert shingles("a b", 5) == {b"a b"}  # shorter than n: one shingle
    assert shingles("abcd", 3, "char") == {b"abc", b"bcd"}
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5


def test_lsh_params_meet_the_recall_target():
    for threshold in (0.6, 0.8, 0.9):
        for num_perm in (64, 128, 256):
            bands, rows = lsh_params(threshold, num_perm, 0.97)
            assert bands * rows <= num_perm
            assert candidate_probability(threshold, bands, rows) >= 0.97
    assert lsh_params(0.8, 128) == (18, 7)
    with pytest.raises(ValueError):
        DedupOptions(bands=20, rows=10).banding()
    assert DedupOptions(bands=16, rows=8).banding() == (16, 8)


def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    base = {f"w{i}".encode() for i in range(400)}
    other = set(rng.sample(sorted(base), 300)) | {f"x{i}".encode() for i in range(100)}
    sigs = minhash_signatures([base, other], num_perm=256)
    assert abs(estimated_jaccard(*sigs) - jaccard(base, other)) < 0.08
    text = " ".join(f"word{i}" for i in range(300))
    opts = DedupOptions()
    a, b = shingle_hashes(text, opts), shingle_hashes(text + " extra words at the end", opts)
    true = jaccard(shingles(dedup_key(text, opts.key), 5), shingles(dedup_key(text + " extra words at the end", opts.key), 5))
    assert abs(exact_jaccard(a, b) - true) < 1e-9


def test_bucket_edges():
    assert bucket_edges(["c", "a", "b"], 32) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert bucket_edges(["c", "a", "b", "d"], 3) == [("a", "b"), ("a", "c"), ("a", "d")]
    assert bucket_edges(["a", "a"], 32) == []


def test_star_steps():
    assert sorted(large_star("b", ["a", "c", "d"])) == [("c", "a"), ("d", "a")]
    assert sorted(small_star("d", ["b", "c"])) == [("c", "b"), ("d", "b")]


def test_preference_is_deterministic():
    a = {"id": "a", "text": "short", "meta": {"q": 1}}
    b = {"id": "b", "text": "much longer text", "meta": {"q": 0.5}}
    assert min([a, b], key=lambda r: preference_key(r, "longest")) is b
    assert min([a, b], key=lambda r: preference_key(r, "first")) is a
    assert min([a, b], key=lambda r: preference_key(r, "longest", "q")) is a
    huge = {"id": "c", "text": "x", "meta": {"q": 10**400}}  # not a usable number: ranks last
    assert min([huge, b], key=lambda r: preference_key(r, "longest", "q")) is b


def union_find(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def assert_components(edges, rounds=12):
    """The Beam labels equal union-find's, and the convergence check reports zero edges left."""
    with TestPipeline() as p:
        labels, bad = connected_components(p | beam.Create(edges), rounds)
        assert_that(bad, equal_to([]), label="converged")
        assert_that(labels, equal_to(sorted(union_find(edges).items())), label="labels")


GRAPHS = {
    "chain": [(f"n{i:02d}", f"n{i + 1:02d}") for i in range(30)],
    "reversed_chain": [(f"n{i + 1:02d}", f"n{i:02d}") for i in range(30)],
    "star": [("m", f"leaf{i}") for i in range(20)],
    "cycle": [(f"c{i}", f"c{(i + 1) % 9}") for i in range(9)],
    "two_components_and_a_pair": [("a", "b"), ("b", "c"), ("x", "y"), ("y", "z"), ("z", "x"), ("p", "q")],
    # every edge three times, both ways round: the rounds carry repeats on (no Distinct per round)
    "repeated_edges": [e for i in range(12) for e in [(f"r{i:02d}", f"r{i + 1:02d}")] * 2 + [(f"r{i + 1:02d}", f"r{i:02d}")]],
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_components_equal_union_find(name):
    assert_components(GRAPHS[name])


def test_random_graph_components_equal_union_find():
    rng = random.Random(7)
    nodes = [f"d{i:03d}" for i in range(120)]
    edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(90)]
    assert_components([(a, b) for a, b in edges if a != b])


def test_too_few_rounds_is_detected():
    with pytest.raises(Exception, match="Failed assert"):
        assert_components(GRAPHS["chain"], rounds=1)


@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 15)), max_size=25))
@settings(max_examples=40, deadline=None)
def test_star_rounds_in_memory_match_union_find(pairs):
    """The same large-star/small-star steps run in plain Python on arbitrary small graphs."""
    edges = {(f"v{a:02d}", f"v{b:02d}") for a, b in pairs if a != b}
    current = set(edges)
    for _ in range(30):
        nbrs = {}
        for a, b in current:
            nbrs.setdefault(a, set()).add(b)
            nbrs.setdefault(b, set()).add(a)
        current = {e for u, vs in nbrs.items() for e in large_star(u, vs)}
        smaller = {}
        for a, b in current:
            u, v = (a, b) if b <= a else (b, a)
            smaller.setdefault(u, set()).add(v)
        current = {e for u, vs in smaller.items() for e in small_star(u, vs)}
    labels = {a: b for a, b in current} | {b: b for _, b in current}
    assert labels == union_find(edges)


@given(st.text(max_size=200) | st.text(alphabet=st.characters(max_codepoint=127), max_size=200),
       st.booleans(), st.booleans(), st.booleans(), st.booleans())
@settings(max_examples=400)
def test_ascii_key_fast_path_equals_the_unicode_path(text, lower, punct, digits, spaces):
    from llmdata.dedup import dedup_key_unicode

    opts = KeyOptions(lowercase=lower, strip_punctuation=punct, map_digits=digits, collapse_whitespace=spaces)
    assert dedup_key(text, opts) == dedup_key_unicode(text, opts)



_PUNCTUATED = st.text(alphabet=st.sampled_from(list("aZ9 .,;-_\\]^[()\x00\x1f\x7f\x85\u00a7\u00b2\u2014\u2019\u201c"
                                                   "\u3001\u3002\uff0c\u4e2d\u00e9\u0301\u20ac\U0001f600")))


@given(_PUNCTUATED | st.text())
@example("a\u00a7b\u2014c\u2019d\u201ce\u3001f\u3002g\uff0ch\u20aci\U0001f600j\x85k.")  # > 8 distinct: one class
@example("x\ud800. \u2014y")  # a lone surrogate passes through
@settings(max_examples=400)
def test_punctuation_to_spaces_equals_the_unicode_class(text):
    import regex

    from llmdata.dedup import punctuation_to_spaces
    assert punctuation_to_spaces(text) == regex.sub(r"[\p{P}\p{S}\p{Cc}]", " ", text)


@given(st.lists(st.sampled_from(["a", "b", "c", "dd", "中"]), max_size=12), st.integers(1, 7))
def test_word_shingles_are_the_n_word_windows(toks, n):
    from llmdata.dedup import shingle_strings
    expected = {" ".join(toks[i : i + n]) for i in range(max(len(toks) - n + 1, 1))} - {""}
    assert shingle_strings(" ".join(toks), n) == expected

_KEYISH = st.text(alphabet=st.sampled_from(list("ab_Z09 \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0.-é中")), max_size=40)


@given(_KEYISH | st.text(max_size=40))
@settings(max_examples=400)
def test_key_words_are_the_words_of_any_key(text):
    """The whitespace split of plain ASCII keys gives `words`' \\w+ runs, for keys as the stage
    makes them and for any text (ASCII whitespace and control characters, \\x85 and NBSP, which
    str.split also splits on, and non-ASCII letters take `words` itself)."""
    from llmdata.dedup import key_words
    from llmdata.scripts import words

    for key in (text, dedup_key(text, KeyOptions()), dedup_key(text, KeyOptions(strip_punctuation=False))):
        assert key_words(key) == words(key)


@given(st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat", "Ünï", "中", "!", "x_y", "42"]), max_size=30)
       | st.sampled_from(["", "   ", "!!!", "a", "a a a a a a a a a a a a"]))
@settings(max_examples=200)
def test_shingle_hashes_are_the_distinct_hashes_of_the_shingle_set(toks):
    """Repeated shingles are hashed once each in the set the stage compares: the reference is the
    set of n-word windows of `words` (no fast path), hashed, sorted."""
    import mmh3

    from llmdata.scripts import words

    opts = DedupOptions()
    text = toks if isinstance(toks, str) else " ".join(toks)
    key = dedup_key(text, opts.key)
    unit, n = opts.shingle_plan(key)  # char 5-grams when most letters are Han
    w = words(key) if unit == "word" else list("".join(key.split()))
    grams = {("" if unit == "char" else " ").join(w[i : i + n]) for i in range(max(len(w) - n + 1, 1))} - {""}
    assert shingle_hashes(text, opts).tolist() == sorted({mmh3.hash(g, opts.seed, signed=False) for g in grams})


def test_shingle_hashes_are_the_hashes_of_the_shingles():
    import mmh3

    opts = DedupOptions()
    text = "The Quick, brown fox; jumps over the lazy dog again and again."
    expected = sorted({mmh3.hash(s, opts.seed, signed=False) for s in shingles(dedup_key(text, opts.key), 5)})
    assert shingle_hashes(text, opts).tolist() == expected


# ---------------------------------------------------------------- exact means exact, every script


PARAGRAPHS = json.loads((Path(__file__).parent / "fixtures" / "dedup_paragraphs.json").read_text(encoding="utf-8"))

#: Pairs of different texts that an aggressive key (punctuation stripped, NFKC) makes collide.
SYMBOL_PAIRS = [("x = y + 1", "x = y - 1"), ("a > b", "a < b"), ("C", "C++"), ("i++", "i--"), ("x\u00b2", "x2"),
                ("if (a && b) return;", "if (a || b) return;"), ("\u4f60\u597d\uff01", "\u4f60\u597d\uff1f")]


def exact_outcome(texts, opts=None):
    """What the exact stage does with these texts: candidate groups, split by verification."""
    opts = opts or KeyOptions()
    groups = {}
    for i, t in enumerate(texts):
        groups.setdefault(key_hash(dedup_key(t, opts)), []).append({"id": str(i), "text": t, "lang": "en"})
    return [[r["text"] for r in part] for g in groups.values() for part in split_exact(g, opts)]


def test_exact_level_is_whitespace_and_case_only():
    o = KeyOptions()
    assert exact_key("  Hello\n\tWORLD ", o) == "hello world"
    assert exact_key("e\u0301", o) == "\u00e9"  # canonically equivalent spellings are one text
    assert exact_key("x\u00b2", o) != exact_key("x2", o)
    assert exact_key("Foo", KeyOptions(lowercase=False)) != exact_key("foo", KeyOptions(lowercase=False))
    assert exact_key("a  b", KeyOptions(collapse_whitespace=False)) != exact_key("a b", KeyOptions(collapse_whitespace=False))


@pytest.mark.parametrize("a,b", SYMBOL_PAIRS)
def test_code_and_math_pairs_collide_as_candidates_but_stay_apart(a, b):
    opts = DedupOptions()
    assert dedup_key(a, opts.key) == dedup_key(b, opts.key)  # the aggressive key cannot tell them apart
    assert sorted(exact_outcome([a, b])) == sorted([[a], [b]])
    bands, rows = opts.banding()
    assert near_pair(a, b, opts, bands, rows) == (False, 0.0)  # too short to be anyone's near duplicate


def test_exact_duplicates_are_still_found():
    assert exact_outcome(["Hello  world", "hello world", "HELLO\nWORLD"]) == [["Hello  world", "hello world", "HELLO\nWORLD"]]
    assert exact_outcome(["Hello world", "hello world"], KeyOptions(lowercase=False)) == [["Hello world"], ["hello world"]]


def test_code_keeps_its_case_at_the_exact_level():
    """Foo and foo are different identifiers: two code records that differ only in case are not
    exact duplicates (prose records still are); `lowercase_code: true` folds code too."""
    a = "def Parse(x):\n    return Parse(x)\n"
    b = "def parse(x):\n    return parse(x)\n"
    code = [{"id": "a", "text": a, "lang": "code"}, {"id": "b", "text": b, "lang": "code"}, {"id": "c", "text": b, "lang": "code"}]
    assert [[r["id"] for r in p] for p in split_exact(code, KeyOptions())] == [["a"], ["b", "c"]]
    assert [[r["id"] for r in p] for p in split_exact(code, KeyOptions(lowercase_code=True))] == [["a", "b", "c"]]
    prose = [{"id": "a", "text": "Unit Started", "lang": "en"}, {"id": "b", "text": "unit started", "lang": "en"}]
    assert [[r["id"] for r in p] for p in split_exact(prose, KeyOptions())] == [["a", "b"]]
    # without a lang field the record is judged by llmdata.langid's code rule
    unlabelled = [{"id": "a", "text": "x = Foo()\ny = Foo(x)\nprint(y)\n"}, {"id": "b", "text": "x = foo()\ny = foo(x)\nprint(y)\n"}]
    assert len(split_exact(unlabelled, KeyOptions())) == 2
    # a code record and a prose record of the same case stay duplicates; the prose case variant joins neither
    mixed = [{"id": "a", "text": b, "lang": "code"}, {"id": "b", "text": b, "lang": "en"}, {"id": "c", "text": b.upper(), "lang": "en"}]
    assert [[r["id"] for r in p] for p in split_exact(mixed, KeyOptions())] == [["a", "b"], ["c"]]


def test_code_keeps_its_indentation_at_the_exact_level():
    """Whitespace collapsing made `y()` inside and after an `if` one text: different programs merged."""
    a = "def f(a):\n    if a:\n        x()\n    y()\n    return 1\n"
    b = "def f(a):\n    if a:\n        x()\n        y()\n    return 1\n"
    recs = [{"id": "a", "text": a, "lang": "code"}, {"id": "b", "text": b, "lang": "code"}]
    assert len(split_exact(recs, KeyOptions())) == 2
    assert len(split_exact(recs, KeyOptions(lowercase=False))) == 2
    # trailing spaces, CRLF and blank lines are not the program: still one text
    c = a.replace("\n", "  \r\n").replace("    y()", "\n\n    y()")
    assert len(split_exact([recs[0], {"id": "c", "text": c, "lang": "code"}], KeyOptions())) == 1
    # prose keeps its whitespace folding
    prose = [{"id": "a", "text": "One  line\nand   another", "lang": "en"}, {"id": "b", "text": "one line and another", "lang": "en"}]
    assert len(split_exact(prose, KeyOptions())) == 1


def test_one_or_two_lines_of_code_keep_their_case():
    """The line share needs 3 lines, so the clean stage labels a one-line snippet with whatever
    py3langid says (`print(Foo)`: "ro"); case folding then merged different programs."""
    for a, b in [("print(Foo)", "print(foo)"), ("x = Y + 1", "x = y + 1"), ("import Foo\nFoo.run()", "import foo\nfoo.run()"),
                 ("const Foo = require('foo');", "const foo = require('foo');")]:
        for lang in ("ro", "en", None):
            recs = [{"id": "a", "text": a}, {"id": "b", "text": b}]
            if lang:
                for r in recs:
                    r["lang"] = lang
            assert len(split_exact(recs, KeyOptions())) == 2, (a, lang)
    # short prose case variants stay exact duplicates of each other
    for a, b in [("Unit Started", "unit started"), ("Hello World.\nSee You.", "hello world.\nsee you.")]:
        assert len(split_exact([{"id": "a", "text": a, "lang": "en"}, {"id": "b", "text": b, "lang": "en"}], KeyOptions())) == 1


@given(st.lists(st.tuples(st.sampled_from(["Ab", "ab", "AB", "a b", "a  B"]), st.booleans()), min_size=2, max_size=10))
@settings(max_examples=300)
def test_split_exact_with_code_never_folds_case_of_code(items):
    """Every record lands in one part; parts are equal at the (case-folded) exact level; a part
    holding code is equal case-sensitively; prose-only parts of one folded key are one part."""
    recs = [{"id": str(i), "text": t, "lang": "code" if c else "en"} for i, (t, c) in enumerate(items)]
    opts = KeyOptions()
    cased = KeyOptions(lowercase=False)
    parts = split_exact(recs, opts)
    assert sorted(r["id"] for p in parts for r in p) == sorted(r["id"] for r in recs)
    for p in parts:
        assert len({exact_key(r["text"], opts) for r in p}) == 1
        if any(r["lang"] == "code" for r in p):
            assert len({exact_key(r["text"], cased) for r in p}) == 1
    prose_keys = [exact_key(p[0]["text"], opts) for p in parts if all(r["lang"] != "code" for r in p)]
    assert len(prose_keys) == len(set(prose_keys))


_COLLIDING = st.text(alphabet=st.sampled_from(list("ab AB+-<>=!.,\u00b2\u00b32\u00e9\u0301\uff0c,\u3002\n\t")), max_size=8)


@given(st.lists(_COLLIDING, min_size=2, max_size=12), st.booleans(), st.booleans(), st.booleans(), st.booleans())
@settings(max_examples=400)
def test_verification_never_merges_different_texts(texts, lower, spaces, digits, accents):
    """Whatever the candidate key folds, records end in one exact group only when their texts are
    equal after the configured whitespace and case folding, and no record is lost."""
    opts = KeyOptions(lowercase=lower, collapse_whitespace=spaces, map_digits=digits, remove_accents=accents)
    parts = exact_outcome(texts, opts)
    assert sorted(t for p in parts for t in p) == sorted(texts)
    for p in parts:
        assert len({exact_key(t, opts) for t in p}) == 1
    # and equal texts are never left apart, unless one looks like code (`x=b` and `X=B`, llmdata.dedup.is_code)
    keys = [exact_key(p[0], opts) for p in parts if not any(is_code({"text": t, "lang": "en"}) for t in p)]
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------- shingles per script

def test_shingle_plan_per_script():
    opts = DedupOptions()
    def plan(text):
        return opts.shingle_plan(dedup_key(text, opts.key))

    assert plan(PARAGRAPHS["en"][0]) == ("word", 5)
    assert plan(PARAGRAPHS["zh"][0]) == ("char", 5)
    assert plan(PARAGRAPHS["ja"][0]) == ("char", 5)
    assert plan(PARAGRAPHS["th"][0]) == ("char", 8)
    assert plan("\ud55c\uad6d\uc5b4\ub294 \ub744\uc5b4\uc4f0\uae30\ub97c \ud569\ub2c8\ub2e4") == ("word", 5)  # Hangul has spaces
    assert plan("\u042d\u0442\u043e \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442") == ("word", 5)
    assert plan("\u0e81\u0eb2\u0e99\u0e9e\u0eb2\u0eaa\u0eb2\u0ea5\u0eb2\u0ea7") == ("char", 8)  # Lao
    # Mixed: decided by the share of letters in scripts without spaces.
    assert plan("\u8fd0\u884c\u4e0b\u9762\u7684\u547d\u4ee4\u5b89\u88c5\u8f6f\u4ef6\u5305\uff1a pip install x") == ("char", 5)
    assert plan("Run pip install llmpipe to install the package \u5b89\u88c5") == ("word", 5)
    assert DedupOptions(shingle_unit="word").shingle_plan("\u4f60\u597d\u4e16\u754c") == ("word", 5)
    assert DedupOptions(shingle_unit="char", char_shingle_size={"han": 3}).shingle_plan("\u4f60\u597d\u4e16\u754c") == ("char", 3)
    assert DedupOptions(shingle_unit="char").shingle_plan("hello world") == ("char", 5)


def test_shingle_units():
    assert shingle_strings("\u4f60\u597d \u4e16\u754c\u554a", 3, "char") == {"\u4f60\u597d\u4e16", "\u597d\u4e16\u754c", "\u4e16\u754c\u554a"}
    assert shingle_strings("\u4f60\u597d\u4e16\u754c", 2, "word") == {"\u4f60 \u597d", "\u597d \u4e16", "\u4e16 \u754c"}  # one word per Han character
    assert shingle_strings("\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22", 8, "char") == {"\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22"}  # shorter than n: one shingle
    assert shingle_strings("   ", 5, "char") == set()
    assert min_shingles_for(5, 0.8) == 45 and min_shingles_for(8, 0.8) == 72 and min_shingles_for(5, 0.5) == 15


def one_character_edits(text, rng, count):
    """`count` copies of `text`, each with one character substituted, deleted or inserted (a letter
    of the same text, so the edit stays in the text's script)."""
    letters = [c for c in text if c.isalpha()]
    out = []
    for _ in range(count):
        i, kind, c = rng.randrange(len(text)), rng.choice("sdi"), rng.choice(letters)
        out.append(text[:i] + c + text[i + 1:] if kind == "s" else text[:i] + text[i + 1:] if kind == "d" else text[:i] + c + text[i:])
    return out


@pytest.mark.parametrize("lang", ["zh", "ja", "th", "en"])
def test_one_character_edits_are_found_in_every_script(lang):
    """Near-dup recall of one-character edits, per language, through the same shingles, MinHash,
    LSH bands and verification as the stage."""
    opts = DedupOptions()
    bands, rows = opts.banding()
    template = minhash_template(opts)
    rng = random.Random(lang)
    found = total = 0
    for text in PARAGRAPHS[lang]:
        for copy in one_character_edits(text, rng, 25):
            found += near_pair(text, copy, opts, bands, rows, template)[0]
            total += 1
    assert found / total >= 0.95, f"{lang}: {found}/{total}"


def test_different_paragraphs_are_never_near_duplicates():
    opts = DedupOptions()
    bands, rows = opts.banding()
    texts = [t for lang in sorted(PARAGRAPHS) for t in PARAGRAPHS[lang]]
    template = minhash_template(opts)
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            assert near_pair(a, b, opts, bands, rows, template)[0] is False


def test_templated_notices_are_not_merged():
    opts = DedupOptions()
    bands, rows = opts.banding()
    units = ["foo.service", "bar.service", "nginx.service", "sshd.service"]
    en = [f"Unit {u} {v}" for u in units for v in ("started", "stopped", "failed", "entered failed state")]
    zh = [f"\u5355\u5143 {u} {v}" for u in units for v in ("\u5df2\u542f\u52a8", "\u5df2\u505c\u6b62", "\u5931\u8d25", "\u5df2\u91cd\u65b0\u52a0\u8f7d")]
    longer = [f"The unit {u} has {v} successfully. The job identifier is 4721 and the result is done." for u in units for v in ("started", "stopped")]
    for texts in (en, zh, longer):
        assert all(len(part) == 1 for part in exact_outcome(texts))
        for i, a in enumerate(texts):
            for b in texts[i + 1:]:
                assert near_pair(a, b, opts, bands, rows) == (False, 0.0)
    # The same rule, stated: shorter than n(1+t)/(1-t) shingles is exact dedup only.
    hashes, _, n = document_shingles(zh[0], opts)
    assert hashes.size < opts.min_shingles_needed(n)


def test_char_sizes_are_checked():
    with pytest.raises(ValueError, match="unknown script group"):
        DedupOptions(char_shingle_size={"chinese": 3})
    with pytest.raises(ValueError, match="1-50"):
        DedupOptions(char_shingle_size={"han": 0})
    assert DedupOptions(char_shingle_size={"other": 4}).char_shingle_size == {"other": 4}


@given(st.sets(st.integers(0, 2**32 - 1), max_size=300), st.sampled_from(["affine32", "affine64", "legacy"]),
       st.sampled_from([16, 128]))
@settings(max_examples=150, deadline=None)
def test_minhash_signature_is_datasketchs_signature_of_one_int_per_shingle(values, scheme, num_perm):
    """`minhash_signature` hands the hash set to datasketch as one array; the documented use, one
    Python int per shingle (hashfunc=int), gives the same values in the same dtype, for each of
    datasketch's permutation schemes, the empty set included."""
    import numpy as np
    from datasketch import MinHash

    opts = DedupOptions(num_perm=num_perm)
    template = MinHash(num_perm=num_perm, seed=opts.seed, hashfunc=int, scheme=scheme)
    hashes = np.array(sorted(values), dtype=np.uint32)
    reference = MinHash(num_perm=num_perm, seed=opts.seed, hashfunc=int, permutations=template.permutations, scheme=scheme)
    reference.update_batch(hashes.tolist())
    got = minhash_signature(hashes, opts, template)
    assert got.dtype == reference.hashvalues.dtype and got.tolist() == reference.hashvalues.tolist()
