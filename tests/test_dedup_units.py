"""Dedup building blocks: keys, shingles, LSH parameters, signatures, bucket edges, star steps."""
import random

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.dedup import (
    DedupOptions,
    KeyOptions,
    bucket_edges,
    candidate_probability,
    dedup_key,
    estimated_jaccard,
    jaccard,
    large_star,
    lsh_params,
    minhash_signatures,
    preference_key,
    shingles,
    small_star,
)
from pipelines.dedup import connected_components, exact_jaccard, shingle_hashes


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


def test_shingle_hashes_are_the_hashes_of_the_shingles():
    import mmh3

    opts = DedupOptions()
    text = "The Quick, brown fox; jumps over the lazy dog again and again."
    expected = sorted({mmh3.hash(s, opts.seed, signed=False) for s in shingles(dedup_key(text, opts.key), 5)})
    assert shingle_hashes(text, opts).tolist() == expected
