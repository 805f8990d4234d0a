"""What every stage does around its real work: match inputs, decide whether to skip, fingerprint,
read the pipeline's side products back, and tally outcomes by reason."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from llmdata.errors import LlmpipeError
from llmdata.reasons import Outcome, UnknownReasonError, parse_reason
from pipelines import fs, progress
from pipelines.beam_io import KINDS, PRODUCTS
from pipelines.manifest import MANIFEST, input_fingerprint, is_complete, read_manifest, stage_fingerprint


class StageInputError(LlmpipeError, ValueError):
    """The stage's input cannot be used (no files match, a thresholds file is missing...)."""


@dataclass
class StagePlan:
    """A stage about to run: its files, the fingerprint its manifest will carry, or a skip."""

    files: list[str]
    inputs: dict
    fingerprint: str
    up_to_date: Optional[dict] = None  # the finished manifest, when the stage is skipped
    config: dict = field(default_factory=dict)


def plan_stage(
    stage: str,
    config: dict,
    pattern: str,
    out: str,
    force: bool,
    extra_inputs: Optional[dict] = None,
    upstream: Optional[str] = None,
    log: Callable[[str], None] = print,
) -> StagePlan:
    """Match the input and fingerprint config + inputs; a finished, matching stage is not rerun.

    `upstream` is the folder of the stage that produced the input: its manifest stands for the
    input, so rerunning that stage invalidates this one.
    """
    matched = fs.match(pattern)
    if fs.is_local(pattern):
        import glob

        broken = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.islink(p) and not os.path.exists(p))
        if broken:  # git-annex files not fetched, a mount that is down: a shard would vanish unseen
            raise StageInputError(f"input {pattern!r}: {len(broken)} matched path(s) are links to nothing "
                                  f"(first: {broken[0]}); fetch or remove them")
    if not matched:
        if fs.is_local(pattern) and os.path.isdir(pattern):
            raise StageInputError(f"input {pattern!r} is a folder; give a glob of its files, "
                                  f"e.g. '{pattern.rstrip('/')}/*.jsonl.gz'")
        raise StageInputError(f"input {pattern!r} matches no files")
    inputs = {"data": input_fingerprint(pattern)}
    if upstream and fs.exists(fs.join(upstream, MANIFEST)):
        inputs["data"] = input_fingerprint(upstream)
    inputs.update(extra_inputs or {})
    fingerprint = stage_fingerprint(stage, config, inputs)
    done = read_manifest(out) if not force and is_complete(out, fingerprint) else None
    if done:
        fs.remove_tree(out.rstrip("/") + PARTIAL)  # what a killed rerun left beside it
        log(f"{stage}: up to date in {out} (use --force to rerun)")
    return StagePlan([f for f, _, _ in matched], inputs, fingerprint, done, config)


def check_output_folder(out: str, inputs: list[str], stage: Optional[str] = None) -> None:
    """Refuse an output that a stage would destroy by replacing it: a file, a folder holding
    anything but an earlier output of this `stage` (its manifest.json names the stage; None
    accepts any stage's), or the folder of an input. Raises StageInputError (one line)."""
    if not fs.is_local(out):
        return

    real = os.path.realpath(out)
    if os.path.isfile(out):
        raise StageInputError(f"output {out} is a file; a stage writes a folder")
    inside = [f for f in inputs if fs.is_local(f) and os.path.realpath(f).startswith(real + os.sep)]
    if inside:
        raise StageInputError(f"output {out} holds the stage's own input ({inside[0]}); choose another --output")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, MANIFEST)):
        raise StageInputError(f"output {out} holds files that are not a stage's output (no {MANIFEST}); "
                              "a stage replaces its whole folder: choose another --output or empty it")
    earlier = read_manifest(out) if stage and os.path.isdir(out) else None
    if earlier and isinstance(earlier.get("stage"), str) and earlier["stage"] != stage:
        raise StageInputError(f"output {out} holds the output of the {earlier['stage']} stage, which a {stage} "
                              "stage would replace: choose another --output or remove it")


#: suffix of the fresh sibling folder a data stage writes into before it replaces its folder
PARTIAL = ".partial"


def begin(out: str, plan: StagePlan, name: str, log: Callable[[str], None]) -> str:
    """Say what is about to run and return the folder to write into: a fresh sibling of `out`
    (`<out>.partial`), so the stage's previous output stays whole until `publish` replaces it.
    A `.partial` folder left by a failed run is cleared first."""
    check_output_folder(out, plan.files, name)
    work = out.rstrip("/") + PARTIAL
    try:
        fs.remove_tree(work)
        fs.makedirs(work)
    except OSError as err:
        raise StageInputError(f"cannot write the output {out}: {err.strerror or err} ({work})") from None
    size = sum(s for _, s, _ in fs.match_many(plan.files))
    progress.expect(name, size, len(plan.files))
    log(f"{name}: {len(plan.files)} file(s), {size / 1e6:.1f} MB -> {out}")
    return work


def publish(work: str) -> str:
    """Replace the stage folder with the finished `work` folder from `begin` and return the
    stage folder. Refuses (AccountingError) a folder whose manifest is not complete."""
    if not work.endswith(PARTIAL):
        raise ValueError(f"not a folder from begin(): {work}")
    manifest = read_manifest(work)
    if not manifest or manifest.get("status") != "complete":
        from pipelines.manifest import AccountingError

        raise AccountingError(f"{work} has no complete manifest; the previous output is left as it was")
    out = work[: -len(PARTIAL)]
    fs.replace_tree(work, out)
    return out


class MissingProductError(LlmpipeError, KeyError):
    """A side product the pipeline did not declare (a misspelt kind), or a single value it never wrote."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


_ABSENT = object()


class SideProducts:
    """A pipeline's side products (beam_io.Products), read back by kind and by declared shape.

    Reading a kind the pipeline did not declare raises MissingProductError instead of reading as
    empty or zero, so a misspelt kind on either side cannot pass as "nothing counted".
    """

    def __init__(self, kinds: dict[str, str], lines: dict[str, list]):
        self.kinds, self.lines = kinds, lines

    def _declared(self, kind: str, shape: str) -> list:
        declared = self.kinds.get(kind)
        if declared != shape:
            known = ", ".join(sorted(self.kinds))
            raise MissingProductError(f"side product {kind!r} was not declared as {shape} by the pipeline "
                                      f"({'declared as ' + declared if declared else 'declared: ' + known})")
        return self.lines.get(kind, [])

    def values(self, kind: str) -> list:
        """Every value of an `add` kind, in no particular order (empty when the collection was)."""
        return self._declared(kind, "values")

    def one(self, kind: str, default: Any = _ABSENT) -> Any:
        """The single value of an `add` kind; `default` when it wrote none (else MissingProductError)."""
        found = self._declared(kind, "values")
        if found:
            return found[0]
        if default is _ABSENT:
            raise MissingProductError(f"side product {kind!r}: the pipeline wrote no value")
        return default

    def total(self, kind: str) -> Any:
        """A tally's sum; 0 when nothing was counted."""
        found = self._declared(kind, "total")
        return found[0] if found else 0

    def pairs(self, kind: str) -> list[tuple]:
        """A keyed tally's (key, total) pairs; a key that is a JSON list comes back as a tuple."""
        return [(tuple(k) if isinstance(k, list) else k, n) for k, n in self._declared(kind, "pairs")]


def read_products(work: str) -> SideProducts:
    """The pipeline's small side products (see beam_io.Products), with the kinds it declared."""
    out: dict[str, list] = {}
    for line in fs.read_lines(fs.join(work, PRODUCTS)):
        kind, value = json.loads(line)
        out.setdefault(kind, []).append(value)
    return SideProducts(fs.read_json(fs.join(work, KINDS)), out)


def by_reason(pairs: list, kind: str) -> dict:
    """Total and per-reason counts of one kind of outcome, from ((kind, reason), n) pairs."""
    counts = {reason: n for (k, reason), n in pairs if k == kind}
    return {"total": sum(counts.values()), "by_reason": dict(sorted(counts.items()))}


def outcome_counts(products: SideProducts, totals: tuple[str, ...], with_reasons: tuple[str, ...]) -> dict:
    """The manifest's counts from `count_outcomes` products: `input`, plain totals for outcomes
    whose reason is themselves (kept, train...), per-reason breakdowns for the others.

    Raises UnknownReasonError for an outcome the pipeline counted that the caller does not read
    (it would vanish from the accounting) or a reason `llmdata.reasons.parse_reason` does not know.
    """
    pairs = products.pairs("counts")
    read = set(totals) | set(with_reasons)
    for name in read:
        Outcome.check(name)
    unread = sorted({k for (k, _), _ in pairs} - read)
    if unread:
        raise UnknownReasonError(f"outcome {unread[0]!r} was counted by the pipeline but is not read "
                                 f"(read: {', '.join(sorted(read))})")
    for (k, reason), _ in pairs:
        if k in with_reasons:
            parse_reason(reason)
    counts: dict = {"input": int(products.total("input"))}
    for name in totals:
        counts[name] = sum(n for (k, _), n in pairs if k == name)
    for name in with_reasons:
        counts[name] = by_reason(pairs, name)
    return counts
