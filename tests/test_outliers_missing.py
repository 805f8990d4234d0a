"""Outlier thresholds and imputation: the mergeable summaries agree with numpy/scipy."""
import json
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from llmdata.missing import (
    ImputeRule,
    KnotSketch,
    MissingOptions,
    NormalEquations,
    apply_plan,
    build_plan,
    presence,
)
from llmdata.outliers import (
    FeatureRule,
    Moments,
    OutlierOptions,
    check,
    feature_threshold,
    from_json,
    inverse,
    quantile,
    to_json_safe,
    transform,
)


def test_moments_merge_equals_numpy():
    rng = random.Random(1)
    xs = [rng.gauss(5, 2) for _ in range(1000)]
    parts = [Moments() for _ in range(7)]
    for i, x in enumerate(xs):
        parts[i % 7].add(x)
    merged = Moments()
    for part in parts:
        merged.merge(part)
    assert merged.n == 1000
    assert math.isclose(merged.mean, np.mean(xs), rel_tol=1e-12)
    assert math.isclose(merged.std, np.std(xs, ddof=1), rel_tol=1e-9)
    assert merged.lo == min(xs) and merged.hi == max(xs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e150, max_value=1e150), min_size=1, max_size=60),
       st.integers(1, 6), st.randoms(use_true_random=False))
def test_moments_do_not_depend_on_split_or_merge_order(xs, k, rnd):
    """A Beam run's bundles and merge order change run to run; the mean and std must not (exact
    sums): the same bits for any split into k workers merged in any order, equal to fsum's mean."""
    whole = Moments()
    for x in xs:
        whole.add(x)
    shuffled = list(xs)
    rnd.shuffle(shuffled)
    parts = [Moments() for _ in range(k)]
    for i, x in enumerate(shuffled):
        parts[rnd.randrange(k)].add(x)
    rnd.shuffle(parts)
    merged = Moments()
    for part in parts:
        merged.merge(part)
    assert (merged.n, merged.mean, merged.m2, merged.std, merged.lo, merged.hi) == \
        (whole.n, whole.mean, whole.m2, whole.std, whole.lo, whole.hi)
    assert whole.mean == math.fsum(xs) / len(xs) or math.isclose(whole.mean, math.fsum(xs) / len(xs), rel_tol=1e-15)
    assert whole.m2 >= 0


def test_moments_of_non_finite_values_are_non_finite():
    m = Moments()
    for x in (1.0, math.inf, 2.0):
        m.add(x)
    assert m.mean == math.inf and m.std == math.inf and m.hi == math.inf
    m.add(math.nan)
    assert math.isnan(m.mean)
    big = Moments()
    for x in (1e300, -1e300):
        big.add(x)
    assert big.mean == 0.0 and big.std == math.inf


def test_quantile_interpolation():
    qs = [0.0, 10.0, 20.0, 30.0, 40.0]
    assert quantile(qs, 0.0) == 0 and quantile(qs, 1.0) == 40 and quantile(qs, 0.5) == 20
    assert quantile(qs, 0.125) == 5.0


def test_transform_round_trip():
    for name in ("n_chars", "symbol_ratio", "compression_ratio"):
        for x in (0.0, 0.3, 17.0):
            assert math.isclose(inverse(name, transform(name, x, None), None), x, abs_tol=1e-9)
    assert transform("n_chars", 0.0, None) == 0.0
    assert transform("compression_ratio", 0.4, None) == 0.4


def _threshold(values, rule, **opts):
    options = OutlierOptions(features={"f": rule}, **opts)
    m = Moments()
    for v in values:
        m.add(v)
    qs = list(np.quantile(values, np.linspace(0, 1, 101)))
    return feature_threshold("f", m, qs, options)


def test_iqr_and_zscore_thresholds():
    values = list(range(1, 101))
    t = _threshold(values, FeatureRule(method="iqr", k=1.5, log=False))
    q1, q3 = np.quantile(values, [0.25, 0.75])
    assert math.isclose(t["low"], q1 - 1.5 * (q3 - q1)) and math.isclose(t["high"], q3 + 1.5 * (q3 - q1))
    z = _threshold(values, FeatureRule(method="zscore", k=2, log=False, side="high"))
    assert z["low"] == -math.inf and math.isclose(z["high"], np.mean(values) + 2 * np.std(values, ddof=1))


def test_check_names_feature_and_side_and_json_round_trip():
    t = {"f": _threshold(list(range(100)), FeatureRule(method="iqr", log=False, side="both"), iqr_k=1.0)}
    assert check({"f": 50.0}, t) is None
    assert check({"f": 1000.0}, t) == "outlier:f:high"
    assert check({"f": -1000.0}, t) == "outlier:f:low"
    one_sided = {"f": {**t["f"], "low": -math.inf}}
    back = from_json(to_json_safe(one_sided))["groups"]["*"]  # a flat file from before groups: global
    assert back["f"]["low"] == -math.inf and check({"f": -1e9}, back) is None
    with pytest.raises(ValueError):
        from_json({"f": {"method": "iqr"}})


def test_knot_sketch_is_exact_when_small_and_bounded_when_large():
    s = KnotSketch(cap=100)
    for x in range(50):
        s.add(x, 2 * x)
    assert s.knots() == (list(range(50)), [2.0 * x for x in range(50)])
    big = KnotSketch(cap=64)
    for x in range(10_000):
        big.add(x, 3 * x + 1)
    big.compress()
    xs, ys = big.knots()
    assert len(xs) <= 64
    assert all(math.isclose(y, 3 * x + 1) for x, y in zip(xs, ys))  # linear data: means stay on the line


def test_normal_equations_match_lstsq():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = 1.5 + X @ np.array([2.0, -3.0]) + rng.normal(scale=0.01, size=200)
    a, b = NormalEquations(k=2), NormalEquations(k=2)
    for i, (row, target) in enumerate(zip(X, y)):
        (a if i % 2 else b).add(list(row), target)
    coef = a.merge(b).solve()
    ref, *_ = np.linalg.lstsq(np.c_[np.ones(200), X], y, rcond=None)
    assert np.allclose(coef, ref, atol=1e-8)
    assert NormalEquations(k=3).solve() is None


def test_impute_rule_validation():
    with pytest.raises(ValidationError):
        ImputeRule(rule="constant")
    with pytest.raises(ValidationError):
        ImputeRule(rule="interpolate")


def _plan(metas, opts):
    counts: dict = {}
    sums: dict = {}
    values: dict = {}
    for m in metas:
        for k, kind in presence(m).items():
            counts.setdefault(k, {}).setdefault(kind, 0)
            counts[k][kind] += 1
            if kind == "number":
                s, n = sums.get(k, (0.0, 0))
                sums[k] = (s + m[k], n + 1)
                values.setdefault(k, []).append(m[k])
    medians = {k: float(np.median(v)) for k, v in values.items()}
    fits, knots = {}, {}
    for name, rule in opts.fields.items():
        if rule.rule == "regression":
            ne = NormalEquations(k=len(rule.predictors))
            for m in metas:
                if all(isinstance(m.get(p), (int, float)) and m.get(p) is not None for p in rule.predictors + [name]):
                    ne.add([m[p] for p in rule.predictors], m[name])
            fits[name] = ne.solve()
        if rule.rule == "interpolate":
            s = KnotSketch()
            for m in metas:
                if m.get(name) is not None and m.get(rule.order) is not None:
                    s.add(m[rule.order], m[name])
            knots[name] = s.knots()
    return build_plan(len(metas), counts, sums, medians, fits, knots, opts)


def test_plan_rules_and_drop():
    metas = [
        {"a": 1.0, "b": 10, "t": 100.0, "seq": 0, "x": 2.0, "y": 5.0, "s": "str", "rare": 1},
        {"a": None, "b": 20, "t": None, "seq": 1, "x": 4.0, "y": 9.0, "s": "str"},
        {"a": 3.0, "t": 120.0, "seq": 2, "x": 6.0, "y": None, "s": "str"},
        {"a": 5.0, "b": 40, "t": 130.0, "seq": 3, "x": 8.0, "y": 17.0},
    ]
    opts = MissingOptions(
        max_missing_share=0.5,
        fields={
            "a": ImputeRule(rule="mean"),
            "b": ImputeRule(rule="constant", value=-1),
            "t": ImputeRule(rule="interpolate", order="seq"),
            "y": ImputeRule(rule="regression", predictors=["x"]),
        },
    )
    plan = _plan(metas, opts)
    assert plan["rare"]["action"] == "drop" and plan["rare"]["missing_share"] == 0.75
    assert "s" not in plan  # not numeric, not listed: left alone
    assert plan["x"]["action"] == "keep"
    filled = [apply_plan(m, plan) for m in metas]
    assert filled[1][0]["a"] == 3.0 and filled[1][1] == ["a", "t"] or set(filled[1][1]) == {"a", "t"}
    assert filled[2][0]["b"] == -1
    assert filled[1][0]["t"] == 110.0  # halfway between seq 0 (100) and seq 2 (120)
    assert math.isclose(filled[2][0]["y"], 1 + 2 * 6.0)  # y = 1 + 2x fits the complete rows exactly
    assert all("rare" not in m for m, _ in filled)
    assert filled[0][1] == []


def test_integers_beyond_float_range_are_not_numbers():
    from llmdata.missing import is_number

    assert is_number(3) and is_number(2.5) and not is_number(True) and not is_number(float("nan"))
    assert not is_number(10**400) and presence({"n": 10**400}) == {"n": "other"}


def test_plan_median_default_for_unlisted_numeric_fields():
    metas = [{"n": 1}, {"n": 2}, {"n": 100}, {"n": None}]
    plan = _plan(metas, MissingOptions())
    assert plan["n"]["rule"] == "median" and plan["n"]["value"] == 2.0
    assert apply_plan({"n": None}, plan) == ({"n": 2.0}, ["n"])
    assert apply_plan({}, plan) == ({"n": 2.0}, ["n"])


def _grouped(values_by_group: dict[str, list[float]], scope: str = "group", rule: dict | None = None, **opts):
    """grouped_thresholds over one linear feature "f" (FeatureRule fields in `rule`), each value
    also counted in "*"."""
    from llmdata.outliers import GLOBAL, grouped_thresholds

    options = OutlierOptions(features={"f": FeatureRule(**{"method": "iqr", "log": False, "scope": scope, **(rule or {})})}, **opts)
    moments, quants = {}, {}
    for group, values in list(values_by_group.items()) + [(GLOBAL, [v for vs in values_by_group.values() for v in vs])]:
        m = Moments()
        for v in values:
            m.add(v)
        moments[(group, "f")] = m
        quants[(group, "f")] = list(np.quantile(values, np.linspace(0, 1, 101)))
    return grouped_thresholds(moments, quants, options)


def test_thresholds_per_group_with_small_groups_not_judged_by_another_scale():
    from llmdata.outliers import check_grouped

    rng = random.Random(0)
    latin = [rng.gauss(4.7, 0.3) for _ in range(200)]
    han = [rng.gauss(1.05, 0.02) for _ in range(40)]
    t = _grouped({"latin": latin, "han": han, "thai": [3.0] * 10, "none": [9.0] * 3}, min_group_docs=30)
    assert set(t["groups"]) == {"*", "latin", "han"}
    assert t["used_by"] == {"latin": "latin", "han": "han", "thai": None, "none": "*"}
    assert t["group_docs"] == {"*": 253, "latin": 200, "han": 40, "thai": 10, "none": 3}
    # Chinese is judged by Chinese thresholds: a Chinese value passes there, fails among English.
    assert check_grouped({"f": 1.05}, "han", t) == (None, "han")
    assert check_grouped({"f": 1.05}, "latin", t) == ("outlier:f:low", "latin")
    assert check_grouped({"f": 4.7}, "han", t) == ("outlier:f:high", "han")
    # A small group is not judged; with small_groups=global it is judged by every document's.
    assert check_grouped({"f": 100.0}, "thai", t) == (None, None)
    tg = _grouped({"latin": latin, "thai": [3.0] * 10}, min_group_docs=30, small_groups="global")
    assert tg["used_by"]["thai"] == "*" and check_grouped({"f": 100.0}, "thai", tg)[0] == "outlier:f:high"
    # A group never seen when the thresholds were computed: not judged (or global for "none").
    assert check_grouped({"f": 100.0}, "hebrew", t) == (None, None)
    assert check_grouped({"f": 100.0}, "none", t)[1] == "*"
    # group_by none: one set for everything
    tn = _grouped({"latin": latin, "han": han}, group_by="none")
    assert check_grouped({"f": 1.05}, "han", tn) == ("outlier:f:low", "*")


def test_a_global_scope_feature_is_judged_among_all_documents_in_every_group():
    """Length depends on a document's source, not its script: a group of short catalog entries
    (here "han", 40 values near 400) must not reject a full manual page (8,000) that is ordinary
    among all documents, while a 100x dump is still rejected; groups too small stay unjudged."""
    from llmdata.outliers import check_grouped

    rng = random.Random(1)
    latin = [rng.gauss(3000, 800) for _ in range(200)] + [8000.0] * 20
    han = [rng.gauss(400, 40) for _ in range(40)]
    own = _grouped({"latin": latin, "han": han, "thai": [500.0] * 5}, min_group_docs=30)
    wide = _grouped({"latin": latin, "han": han, "thai": [500.0] * 5}, scope="global", min_group_docs=30)
    assert check_grouped({"f": 8000.0}, "han", own) == ("outlier:f:high", "han")
    assert check_grouped({"f": 8000.0}, "han", wide) == (None, "han")
    assert check_grouped({"f": 300000.0}, "han", wide) == ("outlier:f:high", "han")
    assert check_grouped({"f": 300000.0}, "thai", wide) == (None, None)
    assert wide["groups"]["han"]["f"]["scope"] == "global"
    back = from_json(json.loads(json.dumps(to_json_safe(wide))))  # a saved file applies the same way
    assert check_grouped({"f": 8000.0}, "han", back) == (None, "han")


def test_default_rules_judge_length_globally_and_leave_char_entropy_to_the_junk_rule():
    rules = OutlierOptions().features
    assert rules["n_chars"].scope == "global" and rules["mean_word_len"].scope == "group"
    assert "char_entropy" not in rules
    # a long document is not a worse one: length is judged statistically on the low side only,
    # above it only by Gopher's fixed max_words; no line-length or plain type-token ratio rule
    assert rules["n_chars"].side == "low" and rules["n_words"].method == "none"
    assert (rules["n_words"].fixed_min, rules["n_words"].fixed_max) == (3, 100_000)
    assert rules["msttr"].side == "low" and "unique_word_ratio" not in rules and "mean_line_len" not in rules


def test_fixed_limits_bound_the_interval_whatever_the_data():
    from llmdata.outliers import check_grouped

    lengths = [float(x) for x in range(100, 100_000, 1000)]
    capped = _grouped({"latin": lengths}, rule={"method": "none", "fixed_max": 50_000.0})
    t = capped["groups"]["latin"]["f"]
    assert t["high_raw"] == 50_000.0 and t["fixed_max"] == 50_000.0 and t["low"] == -math.inf
    assert check_grouped({"f": 50_001.0}, "latin", capped) == ("outlier:f:high", "latin")
    assert check_grouped({"f": 49_999.0}, "latin", capped) == (None, "latin")
    assert check_grouped({"f": 1.0}, "latin", capped) == (None, "latin")  # method none: no computed end
    # with a computed interval the tighter end wins on each side
    both = _grouped({"latin": lengths}, rule={"fixed_min": 5_000.0, "fixed_max": 1e9})["groups"]["latin"]["f"]
    assert both["low_raw"] == 5_000.0 and both["high"] < 1e9 and both["high_raw"] != 1e9
    back = from_json(json.loads(json.dumps(to_json_safe(capped))))  # a saved file applies the same limit
    assert check_grouped({"f": 50_001.0}, "latin", back) == ("outlier:f:high", "latin")
    with pytest.raises(ValueError, match="fixed_min 10.0 is above fixed_max 1.0"):
        FeatureRule(fixed_min=10, fixed_max=1)


def test_fixed_limits_apply_to_documents_no_group_statistics_judge():
    """Gopher's max_words is a fixed limit: a 100,001-word dump is over it whether or not its
    script group has 30 documents (a single-document input, a Korean dump among English), and
    where the group has no interval of the feature (measured on too few of its documents)."""
    from llmdata.outliers import check_grouped

    latin = [float(x) for x in range(100, 40_000, 500)]
    capped = _grouped({"latin": latin, "hangul": [300.0] * 5}, rule={"method": "none", "fixed_max": 100_000.0})
    assert capped["used_by"]["hangul"] is None
    assert check_grouped({"f": 100_001.0}, "hangul", capped)[0] == "outlier:f:high"
    assert check_grouped({"f": 100_000.0}, "hangul", capped) == (None, None)
    assert check_grouped({"f": 100_001.0}, "greek", capped)[0] == "outlier:f:high"  # a group never seen
    alone = _grouped({"latin": [150_000.0]}, rule={"method": "none", "fixed_max": 100_000.0})
    assert check_grouped({"f": 150_000.0}, "latin", alone)[0] == "outlier:f:high"
    back = from_json(json.loads(json.dumps(to_json_safe(capped))))  # a saved file applies the same limit
    assert check_grouped({"f": 100_001.0}, "hangul", back)[0] == "outlier:f:high"
    # a group with thresholds of its own but no interval of this feature
    del capped["groups"]["latin"]["f"]
    assert check_grouped({"f": 100_001.0}, "latin", capped) == ("outlier:f:high", "latin")
    # statistical intervals still need the group: a small group's outlier is not judged by them
    stat = _grouped({"latin": latin, "hangul": [300.0] * 5})
    assert check_grouped({"f": 1e9}, "hangul", stat) == (None, None)


def test_thresholds_without_any_measured_feature_judge_nothing_without_a_traceback():
    """Only compression_ratio judged and every document under 500 bytes: no feature has a value,
    so there were no groups at all, not even "*", and a document without letters (judged by "*")
    was a KeyError in the Beam worker."""
    from llmdata.outliers import GLOBAL, check_grouped, grouped_thresholds

    t = grouped_thresholds({}, {}, OutlierOptions(features={"compression_ratio": FeatureRule()}))
    assert t["groups"] == {GLOBAL: {}}
    assert check_grouped({"n_chars": 15.0}, "none", t) == (None, GLOBAL)
    assert check_grouped({"n_chars": 15.0}, "latin", t) == (None, None)


def test_a_feature_left_out_of_a_documents_scores_is_not_judged():
    from llmdata.outliers import check_grouped

    t = _grouped({"latin": [0.4 + i / 1000 for i in range(100)]})
    assert check_grouped({"f": 0.99}, "latin", t) == ("outlier:f:high", "latin")
    assert check_grouped({}, "latin", t) == (None, "latin")


def test_grouped_thresholds_json_round_trip_and_bad_files():
    from llmdata.outliers import check_grouped

    t = _grouped({"latin": [float(i) for i in range(100)]}, min_group_docs=30)
    back = from_json(json.loads(json.dumps(to_json_safe(t))))
    assert back == t
    assert check_grouped({"f": 1e9}, "latin", back) == ("outlier:f:high", "latin")
    for bad in ([], {"groups": []}, {"groups": {"latin": 3}}, {"groups": {"latin": {"f": {"method": "iqr"}}}}):
        with pytest.raises(ValueError):
            from_json(bad)
    # a hand-edited file with a value of the wrong type is refused when read, not by a worker's traceback
    good = json.loads(json.dumps(to_json_safe(t)))
    for key, value in (("fixed_max", "100k"), ("low", "0.5"), ("high", [1]), ("log", "yes"), ("fixed_min", True)):
        edited = json.loads(json.dumps(good))
        edited["groups"]["latin"]["f"][key] = value
        with pytest.raises(ValueError, match=f"latin/'f'.*{key}"):
            from_json(edited)


def test_min_spread_keeps_a_degenerate_group_from_rejecting_ordinary_variation():
    values = [1.0] * 90 + [1.02] * 10  # Japanese mean_word_len: nearly every value the same
    tight = _grouped({"kana": values}, min_group_docs=30, min_spread=0.0)["groups"]["kana"]["f"]
    floored = _grouped({"kana": values}, min_group_docs=30)["groups"]["kana"]["f"]
    assert tight["high"] == 1.0 and floored["high"] == pytest.approx(1.0 + 3 * 0.05)


def test_small_groups_spread_is_pooled_toward_the_other_groups():
    """A group of 40 near-identical documents (one source) would reject ordinary variation at its
    own narrow IQR; its spread is shrunk toward the median spread of the groups, weighted by its
    size, and only ever widened (the wide group keeps its own)."""
    from llmdata.outliers import check_grouped, pooled_floor

    rng = random.Random(1)
    wide = [rng.gauss(5.0, 0.3) for _ in range(400)]
    wide2 = [rng.gauss(2.0, 0.3) for _ in range(300)]
    narrow = [rng.gauss(4.2, 0.02) for _ in range(40)]
    own = float(np.quantile(narrow, 0.75) - np.quantile(narrow, 0.25))
    plain = _grouped({"latin": wide, "cyrillic": wide2, "thai": narrow}, min_group_docs=30, spread_prior_docs=0)
    pooled = _grouped({"latin": wide, "cyrillic": wide2, "thai": narrow}, min_group_docs=30)
    label_list = {"f": float(np.quantile(narrow, 0.75) + 5 * max(own, 0.05))}  # a list of UI labels, say
    assert check_grouped(label_list, "thai", plain)[0] == "outlier:f:high"
    assert check_grouped(label_list, "thai", pooled)[0] is None
    t = pooled["groups"]["thai"]["f"]
    median_spread = float(np.quantile(wide, 0.75) - np.quantile(wide, 0.25))  # median of the three groups' IQRs
    assert t["spread_floor"] == pytest.approx(pooled_floor(40, own, median_spread, OutlierOptions().spread_prior_docs), rel=0.05)
    assert t["high"] - t["q3"] == pytest.approx(3 * t["spread_floor"])
    for g in ("latin", "cyrillic"):  # wider than the median or large: their own IQR decides
        assert pooled["groups"][g]["f"]["high"] == pytest.approx(plain["groups"][g]["f"]["high"])
    assert check_grouped({"f": 9.0}, "thai", pooled)[0] == "outlier:f:high"  # far outliers are still outliers


def test_han_and_kana_mean_word_len_is_judged_on_the_high_side_only():
    from llmdata.outliers import GLOBAL, grouped_thresholds

    opts = OutlierOptions()
    moments, quants = {}, {}
    for group in ("han", "latin", GLOBAL):
        m = Moments()
        for v in np.linspace(0.7, 0.9, 50):
            m.add(float(v))
        moments[(group, "mean_word_len")] = m
        quants[(group, "mean_word_len")] = list(np.quantile(np.linspace(0.7, 0.9, 50), np.linspace(0, 1, 101)))
    t = grouped_thresholds(moments, quants, opts)
    assert t["groups"]["han"]["mean_word_len"]["low"] == -math.inf and t["groups"]["han"]["mean_word_len"]["side"] == "high"
    assert t["groups"]["latin"]["mean_word_len"]["low"] > -math.inf


def test_group_name_weighs_characters_that_are_words():
    from collections import Counter

    from llmdata.outliers import group_name
    from llmdata.scripts import script_counts

    # A Chinese help page with English option names: more Latin letters than hanzi, but Chinese.
    page = "选项:\n  -v, --verbose 启用详细输出。\n  -D, --debug 启用调试信息输出。\n  --root-owner-group 强制设置文件属主和属组为 root。"
    counts = script_counts(page)
    assert counts["latin"] > counts["han"] and group_name(counts, "zh") == "han"
    assert group_name(Counter({"latin": 500}), "code") == "code"
    assert group_name(Counter(), "und") == "none"
    assert group_name(Counter({"latin": 100, "cyrillic": 120}), "ru") == "cyrillic"


def test_group_name_counts_japanese_kanji_and_kana_together():
    """Japanese is written in kanji and kana at once: a Japanese man page with English option
    names (dpkg-distaddfile(1) in /usr/share/man/ja: 704 Latin letters, 102 kanji, 176 kana) has
    more Latin letters than weighted kanji or weighted kana alone, was judged among English
    documents and rejected as mean_word_len:low (every kana and kanji is a one-letter word)."""
    from collections import Counter

    from llmdata.outliers import group_name
    from llmdata.scripts import script_counts

    page = ("名前\n  dpkg-distaddfile - debian/files にエントリを追加する\n書式\n  dpkg-distaddfile [option...] "
            "filename section priority\n説明\n  dpkg-distaddfile は debian/files にファイルのエントリを追加する。\n"
            "オプション\n  -ffiles-list-file 別のファイルを読み書きする。\n  --help 使い方を表示して終了する。\n"
            "  --version バージョン情報を表示して終了する。\n関連項目\n  deb-src-files(5), dpkg-genchanges(1), "
            "dpkg-source(1), /usr/share/doc/dpkg/README.feature-removal-schedule.gz\n"
            "Debian Project 1.22.6 2024-02-26 dpkg suite dpkg-distaddfile(1)")
    counts = script_counts(page)
    assert counts["latin"] > 3 * counts["kana"] and counts["latin"] > 3 * counts["han"]
    assert counts["latin"] < 3 * (counts["kana"] + counts["han"])
    assert group_name(counts, "ja") == "kana"
    # Chinese with a few kana stays Chinese (the kana share rule of llmdata.scripts.dominant_script),
    # and so does a page with no kana at all
    assert group_name(Counter({"han": 100, "kana": 5, "latin": 200}), "zh") == "han"
    assert group_name(Counter({"han": 60, "kana": 60, "latin": 1000}), "en") == "latin"


def test_a_feature_measured_on_few_of_a_groups_documents_gets_no_interval_there():
    from llmdata.outliers import GLOBAL, check_grouped, grouped_thresholds

    opts = OutlierOptions(features={"f": FeatureRule(method="iqr", log=False), "g": FeatureRule(method="iqr", log=False)},
                          min_group_docs=30)
    moments, quants = {}, {}
    layout = {("latin", "f"): [float(i) for i in range(40)], ("latin", "g"): [0.5, 0.51, 0.52] * 3}  # g on 9 documents
    layout[(GLOBAL, "f")], layout[(GLOBAL, "g")] = layout[("latin", "f")], layout[("latin", "g")]
    for key, values in layout.items():
        m = Moments()
        for v in values:
            m.add(v)
        moments[key], quants[key] = m, list(np.quantile(values, np.linspace(0, 1, 101)))
    t = grouped_thresholds(moments, quants, opts)
    assert set(t["groups"]["latin"]) == {"f"}  # 40 documents: a group, but g's 9 values make no interval
    assert check_grouped({"f": 20.0, "g": 9.0}, "latin", t) == (None, "latin")


def test_given_feature_rules_change_the_defaults_field_by_field():
    """One --set under clean.outliers.features used to replace the whole default set (only the
    named feature judged, by the section's IQR on both sides)."""
    defaults = OutlierOptions().features
    opts = OutlierOptions(features={"n_words": {"fixed_max": 50_000}, "char_entropy": {"side": "high", "k": 1.5},
                                    "mean_word_len": None})
    assert set(opts.features) == set(defaults) | {"char_entropy"}
    assert opts.features["n_words"].method == "none" and opts.features["n_words"].fixed_min == 3
    assert opts.features["n_words"].fixed_max == 50_000
    assert opts.features["mean_word_len"].method == "none"  # off, and stays off through a full dump
    assert opts.features["msttr"] == defaults["msttr"] and opts.features["char_entropy"].k == 1.5
    assert OutlierOptions.model_validate(opts.model_dump()) == opts
    with pytest.raises(ValidationError, match="msttr.fixed_max = -1: msttr is judged on a log scale"):
        OutlierOptions(features={"msttr": {"fixed_max": -1}})


def test_code_mostly_in_chinese_letters_is_judged_with_chinese():
    """A Chinese tutorial with a code block is labelled code by its code lines; among code its
    one-letter Chinese words failed mean_word_len:low. Latin-lettered code stays in "code"."""
    from collections import Counter

    from llmdata.outliers import group_name

    assert group_name(Counter({"latin": 300, "han": 120}), "code") == "han"  # 360 weighted Han letters
    assert group_name(Counter({"latin": 250, "kana": 40, "han": 60}), "code") == "kana"  # 300 weighted Japanese letters
    assert group_name(Counter({"latin": 400, "han": 100}), "code") == "code"
    assert group_name(Counter({"latin": 300}), "code") == "code" and group_name(Counter(), "code") == "code"
    assert group_name(Counter({"latin": 300, "han": 120}), "zh") == "han"
