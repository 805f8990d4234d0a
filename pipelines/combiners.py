"""Beam CombineFns over the mergeable accumulators of llmdata, so global statistics are computed
by combiners (partial per worker, merged), never by gathering a list into one worker."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import apache_beam as beam

from llmdata.missing import KnotSketch, NormalEquations, presence
from llmdata.outliers import Moments


class MomentsFn(beam.CombineFn):
    """Count, mean, std, min and max of a stream of numbers."""

    def create_accumulator(self) -> Moments:
        return Moments()

    def add_input(self, acc: Moments, x: float) -> Moments:
        return acc.add(float(x))

    def merge_accumulators(self, accs: Iterable[Moments]) -> Moments:
        out = Moments()
        for a in accs:
            out.merge(a)
        return out

    def extract_output(self, acc: Moments) -> Moments:
        return acc


class PresenceFn(beam.CombineFn):
    """Per meta field: in how many records it is a number, null, or something else; and the total."""

    def create_accumulator(self) -> list:
        return [0, Counter()]

    def add_input(self, acc: list, meta: dict) -> list:
        acc[0] += 1
        for key, kind in presence(meta).items():
            acc[1][(key, kind)] += 1
        return acc

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        total, counter = 0, Counter()
        for n, c in accs:
            total += n
            counter.update(c)
        return [total, counter]

    def extract_output(self, acc: list) -> dict[str, Any]:
        fields: dict[str, dict[str, int]] = {}
        for (key, kind), n in acc[1].items():
            fields.setdefault(key, {})[kind] = n
        return {"total": acc[0], "fields": fields}


class KnotSketchFn(beam.CombineFn):
    """A bounded sketch of (order, value) points for interpolation."""

    def __init__(self, cap: int):
        self.cap = cap

    def create_accumulator(self) -> KnotSketch:
        return KnotSketch(cap=self.cap)

    def add_input(self, acc: KnotSketch, point: tuple[float, float]) -> KnotSketch:
        return acc.add(float(point[0]), float(point[1]))

    def merge_accumulators(self, accs: Iterable[KnotSketch]) -> KnotSketch:
        out = KnotSketch(cap=self.cap)
        for a in accs:
            out.merge(a)
        return out

    def extract_output(self, acc: KnotSketch) -> tuple[list[float], list[float]]:
        acc.compress()
        return acc.knots()


class NormalEquationsFn(beam.CombineFn):
    """X'X and X'y of a least-squares fit; the solution is the regression's coefficients."""

    def create_accumulator(self) -> NormalEquations | None:
        return None

    def add_input(self, acc: NormalEquations | None, row: tuple[list[float], float]) -> NormalEquations:
        xs, y = row
        if acc is None:
            acc = NormalEquations(k=len(xs))
        return acc.add(xs, y)

    def merge_accumulators(self, accs: Iterable[NormalEquations | None]) -> NormalEquations | None:
        out = None
        for a in accs:
            if a is None:
                continue
            out = a if out is None else out.merge(a)
        return out

    def extract_output(self, acc: NormalEquations | None) -> list[float] | None:
        return acc.solve() if acc is not None else None
