"""Missing numeric metadata: whole-dataset statistics, an imputation plan, and its application.

The plan is built from mergeable summaries (per-field presence counts, sums, quantiles, the
normal equations of a regression, a bounded sketch of (order, value) knots for interpolation),
so it is the same whichever worker computes it and however the data is split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmdata.reasons import ImputeAction

Rule = Literal["mean", "median", "constant", "interpolate", "regression"]


class ImputeRule(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    rule: Rule = Field(
        "median", description="how a missing value is filled: mean | median | constant | interpolate | regression")
    value: Optional[float] = Field(None, description="the value filled in, for rule constant")
    order: Optional[str] = Field(
        None, description="for rule interpolate: the numeric field the records are ordered by (values are "
        "interpolated along it)")
    predictors: Optional[list[str]] = Field(
        None, description="for rule regression: the fields of the linear (least-squares) regression; default: the "
        "other listed fields")

    @model_validator(mode="after")
    def _needs(self) -> ImputeRule:
        if self.rule == "constant" and self.value is None:
            raise ValueError("rule 'constant' needs a 'value'")
        if self.rule == "interpolate" and not self.order:
            raise ValueError("rule 'interpolate' needs an 'order' field")
        return self


class MissingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    fields: dict[str, ImputeRule] = Field(
        default_factory=dict, description="an imputation rule per numeric meta field, by field name")
    impute_other_numeric: bool = Field(
        True, description="also impute numeric meta fields not listed in `fields`, with `default_rule`")
    default_rule: Literal["mean", "median"] = Field(
        "median", description="the rule (mean | median) for numeric meta fields not listed in `fields`")
    max_missing_share: float = Field(
        0.5, ge=0, le=1, description="a field missing (null) in more than this share of records (0-1) is dropped, "
        "not imputed")
    interpolation_knots: int = Field(
        2048, ge=16, description="(order, value) points kept per field for interpolation; more are merged pairwise")


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool). An integer too large for a float is not a usable number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def presence(meta: dict) -> dict[str, str]:
    """How each top-level meta field looks in one record: number, missing (null) or other."""
    out = {}
    for key, value in meta.items():
        if value is None:
            out[key] = "missing"
        elif is_number(value):
            out[key] = "number"
        else:
            out[key] = "other"
    return out


@dataclass
class KnotSketch:
    """(order, value) points for interpolation, exact up to `cap` points, then merged pairwise.

    Merging keeps equal-weight neighbours' means, so memory stays bounded however large the data.
    """

    cap: int = 2048
    points: list[tuple[float, float, float]] = field(default_factory=list)  # order, value_sum, weight

    def add(self, order: float, value: float) -> KnotSketch:
        self.points.append((order, value, 1.0))
        if len(self.points) > 2 * self.cap:
            self.compress()
        return self

    def merge(self, other: KnotSketch) -> KnotSketch:
        self.points.extend(other.points)
        if len(self.points) > 2 * self.cap:
            self.compress()
        return self

    def compress(self) -> None:
        pts = sorted(self.points)
        while len(pts) > self.cap:
            merged = []
            for i in range(0, len(pts) - 1, 2):
                (o1, v1, w1), (o2, v2, w2) = pts[i], pts[i + 1]
                w = w1 + w2
                merged.append(((o1 * w1 + o2 * w2) / w, v1 + v2, w))
            if len(pts) % 2:
                merged.append(pts[-1])
            pts = merged
        self.points = pts

    def knots(self) -> tuple[list[float], list[float]]:
        """Sorted orders and mean values; points with the same order are averaged."""
        by_order: dict[float, list[float]] = {}
        for order, value_sum, weight in self.points:
            acc = by_order.setdefault(order, [0.0, 0.0])
            acc[0] += value_sum
            acc[1] += weight
        xs = sorted(by_order)
        return xs, [by_order[x][0] / by_order[x][1] for x in xs]


@dataclass
class NormalEquations:
    """X'X and X'y of a least-squares fit with intercept, summed over complete rows."""

    k: int
    xtx: np.ndarray = None  # type: ignore[assignment]
    xty: np.ndarray = None  # type: ignore[assignment]
    n: int = 0

    def __post_init__(self) -> None:
        if self.xtx is None:
            self.xtx = np.zeros((self.k + 1, self.k + 1))
            self.xty = np.zeros(self.k + 1)

    def add(self, x: list[float], y: float) -> NormalEquations:
        row = np.array([1.0, *x])
        self.xtx += np.outer(row, row)
        self.xty += row * y
        self.n += 1
        return self

    def merge(self, other: NormalEquations) -> NormalEquations:
        self.xtx += other.xtx
        self.xty += other.xty
        self.n += other.n
        return self

    def solve(self) -> Optional[list[float]]:
        if self.n <= self.k:
            return None
        from scipy import linalg

        coef, *_ = linalg.lstsq(self.xtx, self.xty)
        return [float(c) for c in coef]


def regression_targets(opts: MissingOptions) -> dict[str, list[str]]:
    """Each regression-imputed field and its predictors (default: the other listed fields)."""
    out = {}
    for name, rule in opts.fields.items():
        if rule.rule == "regression":
            preds = rule.predictors or [f for f in opts.fields if f != name]
            out[name] = [p for p in preds if p != name]
    return out


def build_plan(
    total: int,
    counts: dict[str, dict[str, int]],
    sums: dict[str, tuple[float, int]],
    medians: dict[str, float],
    fits: dict[str, Optional[list[float]]],
    knots: dict[str, tuple[list[float], list[float]]],
    opts: MissingOptions,
) -> dict[str, dict]:
    """Decide, per numeric meta field, whether to drop it or how to fill its gaps.

    `counts[field]` holds the records where the field is a number, null, or something else;
    records lacking the field count as missing too. A field with any non-numeric value is not
    numeric and is left alone, unless it is listed in the config (then its non-numbers are gaps).
    """
    plan: dict[str, dict] = {}
    for name in sorted(set(counts) | set(opts.fields)):
        c = counts.get(name, {})
        numbers = c.get("number", 0)
        listed = name in opts.fields
        if not listed and (c.get("other", 0) > 0 or numbers == 0 or not opts.impute_other_numeric):
            continue
        missing = total - numbers
        share = missing / total if total else 0.0
        entry: dict[str, Any] = {"present": numbers, "missing": missing, "missing_share": share}
        if share > opts.max_missing_share:
            entry["action"] = ImputeAction.DROP
            plan[name] = entry
            continue
        if missing == 0:
            entry["action"] = ImputeAction.KEEP
            plan[name] = entry
            continue
        rule = opts.fields.get(name) or ImputeRule(rule=opts.default_rule)
        s, n = sums.get(name, (0.0, 0))
        fallback = medians.get(name, s / n if n else 0.0)
        entry.update({"action": ImputeAction.IMPUTE, "rule": rule.rule, "fallback": fallback})
        if rule.rule == "mean":
            entry["value"] = s / n if n else 0.0
        elif rule.rule == "median":
            entry["value"] = fallback
        elif rule.rule == "constant":
            entry["value"] = rule.value
        elif rule.rule == "interpolate":
            xs, ys = knots.get(name, ([], []))
            entry.update({"order": rule.order, "knots_x": xs, "knots_y": ys})
        elif rule.rule == "regression":
            entry["predictors"] = regression_targets(opts)[name]
            entry["coef"] = fits.get(name)
        plan[name] = entry
    return plan


def apply_plan(meta: dict, plan: dict[str, dict]) -> tuple[dict, list[str]]:
    """Fill or drop fields in one record's meta; returns the new meta and the fields imputed.

    Simple rules run first, so a regression can use predictors that were themselves imputed.
    An entry whose action `llmdata.reasons.ImputeAction` does not name raises UnknownReasonError.
    """
    meta = dict(meta)
    imputed: list[str] = []
    ordered = sorted(plan.items(), key=lambda kv: kv[1].get("rule") == "regression")
    for name, entry in ordered:
        action = ImputeAction.check(entry.get("action"))
        if action == ImputeAction.DROP:
            meta.pop(name, None)
            continue
        if action != ImputeAction.IMPUTE or is_number(meta.get(name)):
            continue
        rule = entry["rule"]
        value: float = entry["fallback"]
        if rule in ("mean", "median", "constant"):
            value = entry["value"]
        elif rule == "interpolate":
            order = meta.get(entry["order"])
            if entry["knots_x"] and is_number(order):
                value = float(np.interp(order, entry["knots_x"], entry["knots_y"]))
        elif rule == "regression" and entry.get("coef"):
            xs = [meta.get(p) for p in entry["predictors"]]
            if all(is_number(x) for x in xs):
                coef = entry["coef"]
                value = coef[0] + sum(c * x for c, x in zip(coef[1:], xs))
        meta[name] = value
        imputed.append(name)
    return meta, imputed
