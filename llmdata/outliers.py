"""Statistical outlier filtering: thresholds computed from the data, not fixed web rules.

Each feature gets a z-score or an IQR rule, on a log scale where the feature is roughly
log-normal (lengths, counts). The statistics come from mergeable summaries (count and exact sums
of x and x**2, so mean and M2 do not depend on the merge order) and quantiles, so any number of
workers can build them; the resulting thresholds are plain numbers written to `thresholds.json` and can be applied to another run.

Thresholds are computed per script group (llmdata.scripts.dominant_script: "latin", "han",
"kana", "hangul", "cyrillic", "thai", ...; code is its own group, "code"), since a Chinese document's word length or compression
ratio says nothing about an English one's. A group with fewer than `min_group_docs` documents has
no thresholds of its own, and borrowing another group's would judge it on a foreign scale (twelve
Chinese documents under English-majority thresholds all fail `mean_word_len:low`), so by default
(`small_groups: skip`) its documents pass the outlier filter and are judged by the junk rules
(llmdata/junk.py) and fixed rules only; `small_groups: global` judges them by the thresholds of
all documents ("*") instead. Documents without letters (script "none") have no scale of their own
and are always judged by the global thresholds when their group is small. `resolve_group` makes
the choice, the same way when computing and when applying a saved thresholds file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collections import Counter

from llmdata.features import feature_scale
from llmdata.fields import PathStr
from llmdata.reasons import OutlierSide, outlier_reason
from llmdata.scripts import dominant_script
#: the key of the thresholds computed from every document
GLOBAL = "*"

Method = Literal["iqr", "zscore", "none"]
Side = Literal["both", "low", "high"]


class FeatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    method: Optional[Method] = Field(
        None, description="iqr | zscore | none for this feature; null: the section's `method`")
    side: Side = Field("both", description="which tail is rejected: both, low (too small) or high (too large)")
    k: Optional[float] = Field(
        None, gt=0, description="the IQR multiplier (iqr) or the z limit in standard deviations (zscore); null: the "
        "section's")
    log: Optional[bool] = Field(
        None, description="judge on a log scale; null: the feature's own scale (llmdata/features.py FEATURES)")
    # global for features that do not depend on the script: a document's length depends on its source, and a
    # group made of short catalog entries would reject every full manual page.
    scope: Literal["group", "global"] = Field(
        "group", description="group: judged among the document's script group; global: among all documents (\"*\"), "
        "for script-independent features such as length")
    fixed_min: Optional[float] = Field(
        None, description="a fixed lower limit in the feature's own units, applied whatever the data (with method "
        "none: the only one); the interval is the intersection with the computed one")
    fixed_max: Optional[float] = Field(
        None, description="a fixed upper limit in the feature's own units, e.g. n_words 100000 (Gopher's max_words)")

    @model_validator(mode="after")
    def _check_limits(self):
        if self.fixed_min is not None and self.fixed_max is not None and self.fixed_min > self.fixed_max:
            raise ValueError(f"fixed_min {self.fixed_min} is above fixed_max {self.fixed_max}")
        return self


def _default_rules() -> dict[str, FeatureRule]:
    """Features that separate junk from prose *and* code-heavy manuals (measured on the demo
    corpus: alpha, digit and duplicate-line ratios reject real docstrings, so they are opt-in).

    Judged on the side where junk lies and never on length alone above: a long document is not
    a worse one (judged statistically, `n_chars:high` rejected the demo's 24,000-62,000-character
    Python reference pages and 15 of 150 whole CPython modules; `mean_line_len` rejected catalogs
    with one long message per line and Python pages with short headings, and no planted junk of
    any corpus; the plain type-token ratio falls with length, so it rejected 22,000- and
    38,000-character vim tutors as `unique_word_ratio:low`: `msttr` replaces it). bench/RESULTS.md
    "Good documents of every length" has the counts."""
    return {
        # Too short to be a document: a property of the source, not of the script, so judged among
        # all documents. Length is never judged statistically on the high side.
        "n_chars": FeatureRule(side="low", scope="global"),
        # Fixed limits only. Above: Gopher's max_words (Rae et al. 2021, MassiveText; datatrove
        # GopherQualityFilter max_doc_words), which the demo's 0.9-1.3 MB log dumps exceed. Below:
        # 3 words, for "ok", "404", "Click here", "!!!!", which n_chars:low alone does not catch in a
        # corpus of short entries (its fence falls below any length there).
        "n_words": FeatureRule(method="none", fixed_min=3, fixed_max=100_000),
        "mean_word_len": FeatureRule(side="both"),
        "symbol_ratio": FeatureRule(side="high"),
        "msttr": FeatureRule(side="low"),
        "compression_ratio": FeatureRule(side="both"),
        # char_entropy (letter entropy) is computed but not judged by default: junk:random_letters
        # (llmdata/junk.py) finds random letters in every script without group statistics, and the
        # entropy of a large alphabet depends on spacing (Chinese man pages with a space between
        # every character scored "high" among unspaced Chinese). Opt in with `char_entropy: {side: high, k: 1.5}`.
    }


#: (group, feature) judged on the high side only: in Han and kana text every character is a word,
#: so pure Chinese or Japanese has the smallest mean word length possible (1.0) and a low
#: mean_word_len is the best prose there, not junk.
HIGH_SIDE_ONLY: frozenset[tuple[str, str]] = frozenset({("han", "mean_word_len"), ("kana", "mean_word_len")})


class OutlierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = Field(True, description="run the outlier filters")
    method: Method = Field(
        "iqr", description="default rule: iqr (Tukey fences, Q1 - k*IQR .. Q3 + k*IQR) | zscore (mean +- z std) | "
        "none")
    iqr_k: float = Field(3.0, gt=0, description="default IQR multiplier k of the Tukey fences")
    z: float = Field(4.0, gt=0, description="default z-score limit, in standard deviations from the mean")
    features: dict[str, FeatureRule] = Field(
        default_factory=_default_rules, description="the judged features and each one's rule, by feature name "
        "(llmdata/features.py): given rules change or add to the default ones field by field; null turns one off")
    thresholds_file: Optional[PathStr] = Field(
        None, description="apply a saved thresholds.json instead of computing thresholds from this data")
    num_quantiles: int = Field(
        101, ge=5, le=10001, description="quantiles computed per feature and group (Beam ApproximateQuantiles) for "
        "the IQR")
    group_by: Literal["script", "none"] = Field(
        "script", description="script: thresholds per script group (code its own); none: one set for every document")
    # A group whose values nearly all coincide (Japanese mean_word_len is 1.0 to 1.03 when every kana is a
    # word) would otherwise reject ordinary variation.
    min_spread: float = Field(
        0.05, ge=0, description="the smallest IQR (or 1.349 std) on the judging scale, so near-constant groups are "
        "not over-filtered; 0.05 on a log scale is about 5%")
    min_group_docs: int = Field(
        30, ge=5, description="a script group with fewer documents has no thresholds of its own (nor a feature measured "
        "on fewer of its documents, e.g. compression_ratio in a group of short entries)")
    # Partial pooling of the spread: a group of 40 gettext catalogs (Hindi mean word length: IQR 0.052
    # on the log scale, the other groups' median 0.13) rejected every list of UI labels (bench/RESULTS.md).
    spread_prior_docs: int = Field(
        100, ge=0, description="a group's spread (IQR, or 1.349 std) is at least (n*own + this*pooled)/(n + this), "
        "pooled = the median spread of the groups with thresholds: a small group's narrow spread is shrunk "
        "toward the other groups'; only ever widens; 0: off")
    small_groups: Literal["skip", "global"] = Field(
        "skip", description="a group below min_group_docs: skip (not judged) or global (judged by all documents' "
        "thresholds)")


    @field_validator("features", mode="before")
    @classmethod
    def _over_the_defaults(cls, given):
        """Rules given in the config change the default ones field by field and add new ones, so
        `--set clean.outliers.features.n_words.fixed_max=50000` keeps every other default rule (a
        given dict used to replace the whole set: one opt-in turned the defaults off); `null` turns
        a rule off, kept as `method: none` (a section reaches Beam workers as a full dump, where a
        removed rule would come back from the defaults)."""
        if not isinstance(given, dict):
            return given
        merged = {name: rule.model_dump() for name, rule in _default_rules().items()}
        for name, rule in given.items():
            if rule is None:
                merged[name] = {"method": "none"}
            elif isinstance(rule, FeatureRule):
                merged[name] = rule.model_dump()
            elif isinstance(rule, dict) and name in merged:
                merged[name] = {**merged[name], **rule}
            else:
                merged[name] = rule
        return merged

    @model_validator(mode="after")
    def _limits_on_the_judging_scale(self):
        for name, rule in self.features.items():
            use_log, offset = feature_scale(name, rule.log)
            for key in ("fixed_min", "fixed_max"):
                value = getattr(rule, key)
                if value is not None and use_log and value + offset <= 0:
                    raise ValueError(f"features.{name}.{key} = {value:g}: {name} is judged on a log scale, "
                                     f"log(x + {offset:g}), so a limit must be above {-offset:g}")
        return self


#: Letters of a script that count as this many Latin letters when choosing a document's threshold
#: group: a Han or kana character is a word (an English word is ~5 letters), a Hangul syllable
#: block holds 2-3 letters. Without this, a Chinese page with English option names
#: (416 hanzi, 449 Latin letters) would be judged among English documents.
GROUP_WEIGHTS: dict[str, float] = {"han": 3.0, "kana": 3.0, "hangul": 2.0}
#: scripts whose words are one or two letters: a code document mostly in them is judged with its script
_CJK_GROUPS = ("han", "kana", "hangul")


def group_name(counts: Counter, lang: str) -> str:
    """The threshold group of a document from its letters per script (llmdata.scripts.script_counts)
    and language: "code" for code (llmdata.langid labels it), "none" without letters, else the
    script group with the most letters weighted by `GROUP_WEIGHTS` (kana-aware like
    llmdata.scripts.dominant_script: when kana are a fifth of the Han and kana letters, the text is
    Japanese and its kanji count with its kana). Code's line lengths, symbols and identifiers follow other
    laws than prose in any script, so it is judged among code, unless most of its weighted letters
    are Han, kana or Hangul: a Chinese tutorial with a code block is labelled code by its code lines,
    but its words are Chinese, one letter each, and among code it failed `mean_word_len:low`."""
    weighted = Counter({s: n * GROUP_WEIGHTS.get(s, 1.0) for s, n in counts.items()})
    kana, han = counts.get("kana", 0), counts.get("han", 0)
    if kana and kana * 5 >= han + kana:
        # Japanese: its kanji and kana are one writing system, and compete with Latin together (a
        # Japanese man page with English option names has more Latin letters than either alone)
        weighted["kana"] += weighted.pop("han", 0.0)
    if lang == "code":
        cjk = sum(weighted.get(s, 0.0) for s in _CJK_GROUPS)
        if cjk <= sum(weighted.values()) - cjk:
            return "code"
    return dominant_script("", weighted)


def group_keys(script: str, group_by: str = "script") -> tuple[str, ...]:
    """The threshold groups a document of `script` contributes to: its script group and "*"."""
    return (GLOBAL,) if group_by == "none" else (script, GLOBAL)


def resolve_group(script: str, available: set[str] | dict, group_by: str = "script", small_groups: str = "skip") -> Optional[str]:
    """The group whose thresholds judge a document of `script`, or None (not judged).

    Its own group when that has thresholds (at least `min_group_docs` documents); otherwise "*"
    when grouping is off, when `small_groups` is "global" or for documents without letters
    (script "none"); otherwise None.
    """
    if group_by == "none":
        return GLOBAL
    if script in available:
        return script
    if small_groups == "global" or script == "none":
        return GLOBAL
    return None


def transform(feature: str, value: float, rule_log: Optional[bool]) -> float:
    """The value on the scale the feature is judged on: log(x + offset), or x itself."""
    use_log, offset = feature_scale(feature, rule_log)
    return math.log(max(value, 0.0) + offset) if use_log else value


def inverse(feature: str, value: float, rule_log: Optional[bool]) -> float:
    """Back from the judging scale to the feature's own units."""
    use_log, offset = feature_scale(feature, rule_log)
    if not use_log or math.isinf(value):
        return value
    return math.exp(value) - offset if value < 700 else math.inf


# Every finite float is an integer multiple of 2**-1074 (the smallest subnormal), and its square
# one of 2**-2148: sums kept as integers in those units are exact, whatever the order of adding.
_SUM_SHIFT = 1074
_SQUARE_SHIFT = 2 * _SUM_SHIFT
_FLOAT_MAX = Fraction(2) ** 1024  # squares of large values overflow a float's range


@dataclass
class Moments:
    """Count, mean, sum of squared deviations (M2), min and max, mergeable across workers.

    The sums of x and x**2 are kept exactly (integers in units of 2**-1074 and 2**-2148), so the
    mean and M2 are the correctly rounded values of the exact ones, the same for any split into
    workers and any merge order (Chan et al.'s float update is not: a Beam run's bundles change
    the last digits run to run). Non-finite values (inf, nan) make the mean and M2 inf or nan, as
    a float sum would."""

    n: int = 0
    total: int = 0          # sum of x, in units of 2**-1074
    total_sq: int = 0       # sum of x**2, in units of 2**-2148
    special: float = 0.0    # sum of the non-finite values (inf, -inf, nan); 0.0 when there are none
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, x: float) -> Moments:
        self.n += 1
        self.lo = min(self.lo, x)
        self.hi = max(self.hi, x)
        if not math.isfinite(x):
            self.special += x
            return self
        num, den = x.as_integer_ratio()
        exp = den.bit_length() - 1
        self.total += num << (_SUM_SHIFT - exp)
        self.total_sq += (num * num) << (_SQUARE_SHIFT - 2 * exp)
        return self

    def merge(self, other: Moments) -> Moments:
        self.n += other.n
        self.total += other.total
        self.total_sq += other.total_sq
        self.special += other.special
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        return self

    @property
    def mean(self) -> float:
        if self.special or not self.n:
            return self.special if self.special else 0.0
        return float(Fraction(self.total, self.n << _SUM_SHIFT))

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean: (n * sum x**2 - (sum x)**2) / n, exactly."""
        if self.special or not self.n:
            return abs(self.special) if self.special else 0.0
        exact = Fraction(self.n * self.total_sq - self.total * self.total, self.n << _SQUARE_SHIFT)
        return float(exact) if exact < _FLOAT_MAX else math.inf

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


def quantile(qs: list[float], p: float) -> float:
    """Read probability p off an evenly spaced quantile list (qs[0] = min, qs[-1] = max)."""
    pos = p * (len(qs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(qs) - 1)
    return qs[lo] + (qs[hi] - qs[lo]) * (pos - lo)


def own_spread(moments: Moments, qs: list[float], method: str) -> float:
    """A group's spread of one feature on its judging scale, as the rule measures it: the IQR
    (iqr), or 1.349 std (zscore: the IQR of a normal law with that std); 0.0 for method none."""
    if method == "iqr":
        return quantile(qs, 0.75) - quantile(qs, 0.25)
    if method == "zscore":
        return 1.349 * moments.std
    return 0.0


def pooled_floor(n: int, own: float, pooled: float, prior_docs: int) -> float:
    """The spread a group of `n` documents is judged with at least: its own spread shrunk toward
    the pooled (median) spread of all groups, as if that had been measured on `prior_docs`
    documents: (n*own + prior_docs*pooled) / (n + prior_docs). Partial pooling of a scale estimate
    (Gelman et al., Bayesian Data Analysis, ch. 5: hierarchical models shrink small groups' estimates
    toward the population's); used only as a floor, so it never narrows an interval."""
    if prior_docs <= 0 or n + prior_docs == 0:
        return own
    return (n * own + prior_docs * pooled) / (n + prior_docs)


def feature_threshold(feature: str, moments: Moments, qs: list[float], opts: OutlierOptions, floor: float = 0.0) -> dict:
    """The accepted interval of one feature, on its judging scale, with the figures behind it.

    The spread is at least `opts.min_spread` and at least `floor` (`pooled_floor`, on the same scale:
    an IQR, or 1.349 std for zscore)."""
    rule = opts.features[feature]
    method = rule.method or opts.method
    use_log, _ = feature_scale(feature, rule.log)
    q1, med, q3 = quantile(qs, 0.25), quantile(qs, 0.5), quantile(qs, 0.75)
    entry = {
        "method": method,
        "side": rule.side,
        "scope": rule.scope,
        "log": use_log,
        "n": moments.n,
        "mean": moments.mean,
        "std": moments.std,
        "q1": q1,
        "median": med,
        "q3": q3,
        "min": moments.lo,
        "max": moments.hi,
    }
    if method == "iqr":
        k = rule.k or opts.iqr_k
        spread = max(q3 - q1, opts.min_spread, floor)
        low, high = q1 - k * spread, q3 + k * spread
    elif method == "zscore":
        k = rule.k or opts.z
        std = max(moments.std, opts.min_spread / 1.349, floor / 1.349)  # 1.349 std = the IQR of a normal law
        low, high = moments.mean - k * std, moments.mean + k * std
    else:
        k, low, high = 0.0, -math.inf, math.inf
    if rule.side == "low":
        high = math.inf
    elif rule.side == "high":
        low = -math.inf
    if rule.fixed_min is not None:
        low = max(low, transform(feature, rule.fixed_min, rule.log))
    if rule.fixed_max is not None:
        high = min(high, transform(feature, rule.fixed_max, rule.log))
    entry.update({"k": k, "low": low, "high": high, "spread_floor": floor,
                  "fixed_min": rule.fixed_min, "fixed_max": rule.fixed_max})
    entry["low_raw"] = inverse(feature, low, use_log)
    entry["high_raw"] = inverse(feature, high, use_log)
    for limit, end in ((rule.fixed_min, "low"), (rule.fixed_max, "high")):
        if limit is not None and entry[end] == transform(feature, limit, rule.log):
            entry[f"{end}_raw"] = limit  # the limit as written, not its round trip through the log
    entry["median_raw"] = inverse(feature, med, use_log)
    return entry


def check(features: dict[str, float], thresholds: dict[str, dict]) -> Optional[str]:
    """The first feature outside its interval, as `outlier:<feature>:<low|high>`, or None. A
    feature the document's scores leave out (a sample too small to measure it) is not judged."""
    for name, t in thresholds.items():
        if name not in features:
            continue
        x = transform(name, features[name], t["log"])
        if x < t["low"]:
            return outlier_reason(name, OutlierSide.LOW)
        if x > t["high"]:
            return outlier_reason(name, OutlierSide.HIGH)
    return None


def grouped_thresholds(
    moments: dict[tuple[str, str], Moments], quants: dict[tuple[str, str], list[float]], opts: OutlierOptions
) -> dict:
    """The thresholds file's content from per-(group, feature) moments and quantiles.

    Returns {"group_by", "min_group_docs", "small_groups", "group_docs": {group: documents},
    "groups": {group: {feature: interval}} (only groups with at least min_group_docs documents,
    and always the global one), "used_by": {script: group whose thresholds judge it, or null}}.
    """
    docs: dict[str, int] = {}
    for (group, _), m in moments.items():
        docs[group] = max(docs.get(group, 0), m.n)
    # a feature left out of most of a group's scores (compression_ratio of short catalog entries)
    # has too few values there for an interval of its own: that group is not judged on it
    judged = {key: m for key, m in moments.items() if key[0] != GLOBAL and docs[key[0]] >= opts.min_group_docs
              and m.n >= opts.min_group_docs}
    spreads: dict[tuple[str, str], float] = {}
    for (group, name), m in judged.items():
        spreads[(group, name)] = own_spread(m, quants[(group, name)], opts.features[name].method or opts.method)
    pooled = {}
    for name in {n for _, n in spreads}:
        values = sorted(v for (_, n), v in spreads.items() if n == name)
        pooled[name] = (values[(len(values) - 1) // 2] + values[len(values) // 2]) / 2  # the median
    groups: dict[str, dict] = {}
    for (group, name), m in sorted(moments.items()):
        if group == GLOBAL or (group, name) in judged:
            floor = 0.0
            if group != GLOBAL:
                floor = pooled_floor(m.n, spreads[(group, name)], pooled[name], opts.spread_prior_docs)
            t = feature_threshold(name, m, quants[(group, name)], opts, floor)
            if (group, name) in HIGH_SIDE_ONLY and t["side"] != "high":
                t.update({"side": "high", "low": -math.inf, "low_raw": -math.inf})
            groups.setdefault(group, {})[name] = t
    groups.setdefault(GLOBAL, {})  # even without a measured feature: documents without letters are judged by it
    scripts = sorted(g for g in docs if g != GLOBAL)
    return {
        "group_by": opts.group_by,
        "min_group_docs": opts.min_group_docs,
        "small_groups": opts.small_groups,
        "group_docs": dict(sorted(docs.items())),
        "groups": groups,
        "used_by": {s: resolve_group(s, groups, opts.group_by, opts.small_groups) for s in scripts},
    }


def _fixed_interval(name: str, t: dict) -> dict:
    """An interval's fixed limits alone (`fixed_min`, `fixed_max`, in the feature's own units) on its
    judging scale; the ends without a fixed limit are open."""
    lo, hi = t.get("fixed_min"), t.get("fixed_max")
    return {**t, "low": -math.inf if lo is None else transform(name, lo, t["log"]),
            "high": math.inf if hi is None else transform(name, hi, t["log"])}


def check_grouped(features: dict[str, float], script: str, thresholds: dict) -> tuple[Optional[str], Optional[str]]:
    """(reason or None, group used or None when no group's statistics judge it) for one document of
    group `script` under `grouped_thresholds` (or a file read back by `from_json`). A feature whose
    interval says `scope: global` is judged by the global ("*") interval instead of the group's.

    Fixed limits (`fixed_min`, `fixed_max`, e.g. n_words above 100,000) need no statistics: they
    judge every document, also one whose group has no thresholds (a small group, a single-document
    input) or no interval of that feature."""
    every = thresholds["groups"].get(GLOBAL, {})
    fixed = {name: _fixed_interval(name, t) for name, t in every.items()
             if t.get("fixed_min") is not None or t.get("fixed_max") is not None}
    group = resolve_group(script, thresholds["groups"], thresholds.get("group_by", "script"),
                          thresholds.get("small_groups", "skip"))
    if group is None:
        return check(features, fixed), None
    own = thresholds["groups"][group]
    intervals = {name: every.get(name, t) if t.get("scope") == "global" else t for name, t in own.items()}
    return check(features, {**fixed, **intervals}), group


def _safe(t: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in t.items()}


def to_json_safe(thresholds: dict) -> dict:
    """JSON has no infinity: open ends of an interval are written as null."""
    if "groups" not in thresholds:
        return {name: _safe(t) for name, t in thresholds.items()}
    out = dict(thresholds)
    out["groups"] = {g: {name: _safe(t) for name, t in feats.items()} for g, feats in thresholds["groups"].items()}
    return out


def _intervals_from_json(data: dict, where: str) -> dict[str, dict]:
    out = {}
    for name, t in data.items():
        if not isinstance(t, dict):
            raise ValueError(f"thresholds entry {where}{name!r} is not an object")
        t = dict(t)
        if t.get("low") is None:
            t["low"] = -math.inf
        if t.get("high") is None:
            t["high"] = math.inf
        for key in ("method", "log", "low", "high"):
            if key not in t:
                raise ValueError(f"thresholds entry {where}{name!r} lacks {key!r}")
        if not isinstance(t["log"], bool):
            raise ValueError(f"thresholds entry {where}{name!r}: 'log' is {t['log']!r}, not true or false")
        for key in ("low", "high", "fixed_min", "fixed_max"):
            value = t.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"thresholds entry {where}{name!r}: {key!r} is {value!r}, not a number or null")
        out[name] = t
    return out


def from_json(data: dict) -> dict:
    """Read a saved thresholds file back, null ends becoming open intervals.

    A file from before per-group thresholds (a flat {feature: interval} object) is read as the
    global group alone. Raises ValueError on an entry that is not an interval.
    """
    if not isinstance(data, dict):
        raise ValueError("thresholds file is not a JSON object")
    if "groups" not in data:
        return {"group_by": "none", "min_group_docs": 0, "small_groups": "global", "group_docs": {}, "used_by": {},
                "groups": {GLOBAL: _intervals_from_json(data, "")}}
    if not isinstance(data["groups"], dict):
        raise ValueError("thresholds 'groups' is not an object")
    out = dict(data)
    out["groups"] = {}
    for g, v in data["groups"].items():
        if not isinstance(v, dict):
            raise ValueError(f"thresholds group {g!r} is not an object")
        out["groups"][g] = _intervals_from_json(v, f"{g}/")
    if GLOBAL not in out["groups"]:
        out["groups"][GLOBAL] = {}
    return out
