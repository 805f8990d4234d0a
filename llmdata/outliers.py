"""Statistical outlier filtering: thresholds computed from the data, not fixed web rules.

Each feature gets a z-score or an IQR rule, on a log scale where the feature is roughly
log-normal (lengths, counts). The statistics come from mergeable summaries (count, mean, M2 by
Chan's parallel update) and quantiles, so any number of workers can build them; the resulting
thresholds are plain numbers written to `thresholds.json` and can be applied to another run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from llmdata.features import feature_scale

Method = Literal["iqr", "zscore", "none"]
Side = Literal["both", "low", "high"]


class FeatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Optional[Method] = None  # None: the section's default method
    side: Side = "both"
    k: Optional[float] = Field(None, gt=0)  # IQR multiplier or z limit; None: the section's
    log: Optional[bool] = None  # None: the feature's own scale (features.FEATURES)


def _default_rules() -> dict[str, FeatureRule]:
    """Features that separate junk from prose *and* code-heavy manuals (measured on the demo
    corpus: alpha, digit and duplicate-line ratios reject real docstrings, so they are opt-in)."""
    return {
        "n_chars": FeatureRule(side="both"),
        "mean_word_len": FeatureRule(side="both"),
        "mean_line_len": FeatureRule(side="both"),
        "symbol_ratio": FeatureRule(side="high"),
        "unique_word_ratio": FeatureRule(side="low"),
        "compression_ratio": FeatureRule(side="both"),
    }


class OutlierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    method: Method = "iqr"
    iqr_k: float = Field(3.0, gt=0)
    z: float = Field(4.0, gt=0)
    features: dict[str, FeatureRule] = Field(default_factory=_default_rules)
    thresholds_file: Optional[str] = None  # apply a saved thresholds.json instead of computing
    num_quantiles: int = Field(101, ge=5, le=10001)


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


@dataclass
class Moments:
    """Count, mean and sum of squared deviations, mergeable across workers (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, x: float) -> Moments:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        self.lo = min(self.lo, x)
        self.hi = max(self.hi, x)
        return self

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.m2, self.lo, self.hi = other.n, other.mean, other.m2, other.lo, other.hi
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean += delta * other.n / n
        self.m2 += other.m2 + delta * delta * self.n * other.n / n
        self.n = n
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        return self

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


def quantile(qs: list[float], p: float) -> float:
    """Read probability p off an evenly spaced quantile list (qs[0] = min, qs[-1] = max)."""
    pos = p * (len(qs) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(qs) - 1)
    return qs[lo] + (qs[hi] - qs[lo]) * (pos - lo)


def feature_threshold(feature: str, moments: Moments, qs: list[float], opts: OutlierOptions) -> dict:
    """The accepted interval of one feature, on its judging scale, with the figures behind it."""
    rule = opts.features[feature]
    method = rule.method or opts.method
    use_log, _ = feature_scale(feature, rule.log)
    q1, med, q3 = quantile(qs, 0.25), quantile(qs, 0.5), quantile(qs, 0.75)
    entry = {
        "method": method,
        "side": rule.side,
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
        low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    elif method == "zscore":
        k = rule.k or opts.z
        low, high = moments.mean - k * moments.std, moments.mean + k * moments.std
    else:
        k, low, high = 0.0, -math.inf, math.inf
    if rule.side == "low":
        high = math.inf
    elif rule.side == "high":
        low = -math.inf
    entry.update({"k": k, "low": low, "high": high})
    entry["low_raw"] = inverse(feature, low, use_log)
    entry["high_raw"] = inverse(feature, high, use_log)
    entry["median_raw"] = inverse(feature, med, use_log)
    return entry


def check(features: dict[str, float], thresholds: dict[str, dict]) -> Optional[str]:
    """The first feature outside its interval, as `outlier:<feature>:<low|high>`, or None."""
    for name, t in thresholds.items():
        if name not in features or t["method"] == "none":
            continue
        x = transform(name, features[name], t["log"])
        if x < t["low"]:
            return f"outlier:{name}:low"
        if x > t["high"]:
            return f"outlier:{name}:high"
    return None


def to_json_safe(thresholds: dict[str, dict]) -> dict[str, dict]:
    """JSON has no infinity: open ends of an interval are written as null."""
    return {
        name: {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in t.items()}
        for name, t in thresholds.items()
    }


def from_json(data: dict[str, dict]) -> dict[str, dict]:
    """Read a saved thresholds file back, null ends becoming open intervals."""
    out = {}
    for name, t in data.items():
        t = dict(t)
        if t.get("low") is None:
            t["low"] = -math.inf
        if t.get("high") is None:
            t["high"] = math.inf
        for key in ("method", "log", "low", "high"):
            if key not in t:
                raise ValueError(f"thresholds entry {name!r} lacks {key!r}")
        out[name] = t
    return out
