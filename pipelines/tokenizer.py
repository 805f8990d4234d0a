"""The tokenizer stage: pre-token counts as a Beam aggregation, merges learned from the bounded
table, the tokenizer saved in HF and GPT-2 layouts, and a report.

    documents ─► split train / held-out by a hash of the id
    train ─► pre-tokens counted per bundle (by distinct piece) ─► CombinePerKey(sum) ─► top max_pretokens + 1
    driver: every pre-token kept, unless there were more than max_pretokens (then the rarest are
    pruned, whole frequency classes at a time) ─► learn merges (a pair needs min_frequency
    occurrences) ─► tokenizer.json, vocab.json, merges.txt ─► report with held-out bytes/token per language
"""
from __future__ import annotations

import hashlib
import json
import resource
import time
from typing import Callable, Iterator, Optional

import apache_beam as beam

from llmdata.bpe import PATTERNS, PretokenCounter, TokenizerOptions, learn_merges
from llmdata.reasons import Outcome, QuarantineField as Q, RecordField as F
from llmdata.records import FieldSpec, to_json_line
from llmdata.scripts import dominant_script
from llmdata.tokenizer_io import BPETokenizer
from pipelines import fs
from pipelines.beam_io import BAD, UNITS, Products, ReadFileUnits, count_outcomes, glob_base, police_bad_records
from pipelines.manifest import write_manifest
from pipelines.runner import beam_pipeline
from pipelines.stage import StageInputError, begin, outcome_counts, plan_stage, publish, read_products

WORK = "_work"


def is_heldout(doc_id: str, fraction: float) -> bool:
    """A stable split: the same document is always on the same side, on any worker."""
    h = int(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).hexdigest(), 16)
    return (h % 1_000_000) < fraction * 1_000_000


class CountPretokens(beam.DoFn):
    """Pre-token counts aggregated within a bundle (bounded by `flush_every` distinct pieces), then
    emitted; Beam's combiner merges them across bundles and workers."""

    def __init__(self, pattern: str, flush_every: int):
        self.pattern = pattern
        self.flush_every = flush_every

    def start_bundle(self) -> None:
        # fresh per bundle: a bundle that failed and is retried must not leave counts behind
        self.counter = PretokenCounter(self.pattern)

    def process(self, record: dict) -> Iterator:
        # counted as str and encoded once per distinct pre-token at the driver: encoding every
        # occurrence cost half as much again as the regex
        self.counter.add(record["text"])
        if len(self.counter) >= self.flush_every:
            yield from self.counter.take().items()

    def finish_bundle(self) -> Iterator:
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        for kv in self.counter.take().items():
            yield WindowedValue(kv, 0, [GlobalWindow()])


def build_pipeline(p: beam.Pipeline, files: list[str], base: str, out: str, opts: TokenizerOptions, policies: dict, default_policy: str) -> None:
    read = (
        p
        | "Files" >> beam.Create(files)
        | "Read" >> beam.ParDo(ReadFileUnits("auto", "file", FieldSpec(), base)).with_outputs(BAD, UNITS, main="records")
    )
    # No duplicate-id check: counting joins nothing by id, and a shuffle of every document would
    # cost more than the counting itself.
    records = read.records
    quarantined, dropped = police_bad_records(read[BAD], out, policies, default_policy)
    fraction = opts.heldout_fraction
    train, heldout = records | "Split" >> beam.Partition(lambda r, _: int(is_heldout(r[F.ID], fraction)), 2)
    products = Products()

    counted = (
        train
        | "Count" >> beam.ParDo(CountPretokens(opts.regex_pattern(), opts.flush_every))
        | "Sum" >> beam.CombinePerKey(sum)
    )
    products.tally(counted, "distinct_pretokens")
    products.tally(counted, "pretoken_occurrences", value=lambda kv: kv[1])
    # One more than the cap: if it fills, the driver knows the cap was exceeded and at what count.
    products.add(counted | "Table" >> beam.combiners.Top.Of(opts.max_pretokens + 1, key=lambda kv: kv[1]), "table")
    products.tally(train, "train_bytes", value=lambda r: len(r[F.TEXT].encode("utf-8")))

    _ = heldout | "HeldoutLines" >> beam.Map(to_json_line) | "HeldoutWrite" >> beam.io.WriteToText(
        fs.join(out, "heldout", "part"), file_name_suffix=".jsonl.gz"
    )
    count_outcomes(products, read[UNITS], {
        Outcome.TRAIN: (train, None), Outcome.HELDOUT: (heldout, None),
        Outcome.QUARANTINED: (quarantined, Q.REASON), Outcome.DROPPED: (dropped, Q.REASON),
    })
    products.write(fs.join(out, WORK))


def bounded_table(top: list, max_pretokens: int) -> tuple[dict[bytes, int], Optional[int]]:
    """The merge step's table from the `max_pretokens + 1` most frequent (pre-token, count) pairs.

    All of them when there are at most `max_pretokens`. Otherwise the cap was exceeded: every
    pre-token whose count is at or below the smallest count seen is pruned, so that a frequency
    class is kept or pruned whole (which members of a tie reached the top list does not matter).
    Returns the table (pre-token bytes -> count) and that pruning count (None: nothing pruned).
    """
    if len(top) <= max_pretokens:
        return {token.encode("utf-8"): n for token, n in top}, None
    floor = min(n for _, n in top)
    return {token.encode("utf-8"): n for token, n in top if n > floor}, floor


def heldout_by_language(tok: BPETokenizer, records: list[dict]) -> dict[str, dict]:
    """Held-out bytes/token per language: by the record's `lang` field when it has one (the clean
    stage's language identification; an input's own `lang` field, read into `meta`, counts too),
    else by `llmdata.scripts.dominant_script` of its text.
    Returns {group: {"documents", "bytes", "tokens", "bytes_per_token", "grouped_by"}}, largest first."""
    groups: dict[str, dict] = {}
    for rec in records:
        meta = rec.get("meta")
        lang = rec.get("lang", meta.get("lang") if isinstance(meta, dict) else None)
        key, by = (lang, "lang") if isinstance(lang, str) and lang else (dominant_script(rec["text"]), "script")
        g = groups.setdefault(key, {"documents": 0, "bytes": 0, "tokens": 0, "grouped_by": by})
        g["documents"] += 1
        g["bytes"] += len(rec["text"].encode("utf-8"))
        g["tokens"] += len(tok.encode(rec["text"]))
    for g in groups.values():
        g["bytes_per_token"] = round(g["bytes"] / g["tokens"], 4) if g["tokens"] else 0.0
    return dict(sorted(groups.items(), key=lambda kv: (-kv[1]["bytes"], kv[0])))


def _heldout_records(out: str, limit: int) -> list[dict]:
    records, total = [], 0
    for path, _, _ in fs.match(fs.join(out, "heldout", "part-*.jsonl.gz")):
        for rec in fs.iter_json_lines(path):
            records.append(rec)
            total += len(rec["text"].encode("utf-8"))
            if total >= limit:
                return records
    return records


def _printable(token: bytes) -> str:
    return json.dumps(token.decode("utf-8", errors="backslashreplace"), ensure_ascii=False)


def write_report(out: str, tok: BPETokenizer, figures: dict) -> None:
    merged = [tok.vocab[256 + i] for i in range(len(tok.merges))]
    longest = sorted(merged, key=lambda b: (-len(b), b))[:10]
    floor = figures["pruned_at_or_below"]
    pruned = (f"{figures['distinct_pretokens'] - figures['table_size']}: every pre-token seen {floor} times or fewer"
              if floor is not None else "none")
    lines = [
        "# Tokenizer stage report",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| vocabulary (bytes + merges + special tokens) | {tok.vocab_size} |",
        f"| merges learned | {len(tok.merges)} |",
        f"| pre-tokenizer | `{figures['pattern_name']}` |",
        f"| training text | {figures['train_bytes'] / 1e6:.2f} MB |",
        f"| distinct pre-tokens | {figures['distinct_pretokens']} |",
        f"| kept for the merge step (cap {figures['max_pretokens']}) | {figures['table_size']} |",
        f"| pruned (the cap was exceeded) | {pruned} |",
        f"| merge needs a pair seen at least | {figures['min_frequency']} times |",
        f"| held-out bytes per token | {figures['heldout_bytes_per_token']:.3f} (on {figures['heldout_bytes'] / 1e6:.2f} MB) |",
        f"| merge learning time | {figures['merge_s']:.1f} s |",
        f"| peak memory of the process | {figures['peak_rss_mb']:.0f} MB |",
        "",
        "Held-out bytes per token by language (the record's `lang` field, else the script of most of its letters):",
        "",
        "| language | grouped by | documents | held-out bytes | tokens | bytes/token |",
        "|---|---|---:|---:|---:|---:|",
        *(f"| {name} | {g['grouped_by']} | {g['documents']} | {g['bytes']} | {g['tokens']} | {g['bytes_per_token']:.3f} |"
          for name, g in figures["heldout_by_language"].items()),
        "",
        "Special tokens (ids after the merges): " + ", ".join(f"`{t}` = {i}" for t, i in tok.special_ids.items()),
        "",
        "First merges: " + ", ".join(_printable(tok.vocab[256 + i]) for i in range(min(20, len(tok.merges)))),
        "",
        "Longest tokens: " + ", ".join(_printable(b) for b in longest),
        "",
    ]
    if floor is not None:
        lines += [
            f"**The pre-token table was capped.** More than {figures['max_pretokens']} distinct pre-tokens were seen; "
            f"the {figures['distinct_pretokens'] - figures['table_size']} seen {floor} times or fewer were left out of "
            "the merge step, and their pairs with them. Rare pre-tokens are most of a language whose pre-tokens "
            "seldom repeat, so its compression suffers first (see the bytes/token by language): raise "
            "`tokenizer.max_pretokens` if memory allows, or train on less text.",
            "",
        ]
    if len(tok.merges) < figures["requested_merges"]:
        lines.append(
            f"Only {len(tok.merges)} of the {figures['requested_merges']} requested merges: no pair was seen "
            f"{figures['min_frequency']} times or more after that. More text or a smaller vocabulary would fill it."
        )
    fs.write_text(fs.join(out, "report.md"), "\n".join(lines) + "\n")


def run_tokenizer(opts: TokenizerOptions, pattern: str, out: str, beam_args: list[str], policies: dict,
                  default_policy: str, force: bool = False, upstream: Optional[str] = None,
                  log: Callable[[str], None] = print) -> dict:
    config = opts.model_dump(mode="json")
    plan = plan_stage("tokenizer", config, pattern, out, force, upstream=upstream, log=log)
    if plan.up_to_date:
        return plan.up_to_date
    out = begin(out, plan, "tokenizer", log)  # a fresh <out>.partial; the previous output stays until publish
    started = time.time()
    with beam_pipeline(beam_args) as p:
        build_pipeline(p, plan.files, glob_base(pattern), out, opts, policies, default_policy)
    count_s = time.time() - started
    products = read_products(fs.join(out, WORK))
    counts = outcome_counts(products, (Outcome.TRAIN, Outcome.HELDOUT), (Outcome.QUARANTINED, Outcome.DROPPED))
    if not products.total("train_bytes"):
        bad = counts[Outcome.QUARANTINED]["total"] + counts[Outcome.DROPPED]["total"]
        raise StageInputError(f"tokenizer: no training text in {pattern!r} ({counts['input']} records: "
                              f"{counts[Outcome.HELDOUT]} held out, {bad} quarantined or dropped); nothing to learn merges from")
    table, floor = bounded_table(products.one("table"), opts.max_pretokens)
    if floor is not None:
        log(f"tokenizer: more than {opts.max_pretokens} distinct pre-tokens; those seen {floor} times or fewer "
            "are pruned from the merge step (see the report)")
    requested = opts.vocab_size - 256 - len(opts.specials)
    t = time.time()
    result = learn_merges(table, 256 + requested, opts.min_frequency)
    merge_s = time.time() - t
    tok = BPETokenizer(result.merges, opts.regex_pattern(), tuple(opts.specials))
    tok.save(out)
    heldout = _heldout_records(out, opts.heldout_bytes)
    by_language = heldout_by_language(tok, heldout)
    heldout_bytes = sum(g["bytes"] for g in by_language.values())
    heldout_tokens = sum(g["tokens"] for g in by_language.values())
    figures = {
        "pattern_name": opts.pattern if opts.pattern in PATTERNS else "custom",
        "train_bytes": products.total("train_bytes"),
        "distinct_pretokens": products.total("distinct_pretokens"),
        "table_size": len(table),
        "pruned_pretokens": products.total("distinct_pretokens") - len(table),
        "pruned_at_or_below": floor,
        "min_frequency": opts.min_frequency,
        "max_pretokens": opts.max_pretokens,
        "requested_merges": requested,
        "heldout_bytes_per_token": heldout_bytes / heldout_tokens if heldout_tokens else 0.0,
        "heldout_bytes": heldout_bytes,
        "heldout_by_language": by_language,
        "merge_s": merge_s,
        "count_s": count_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    write_report(out, tok, figures)
    fs.remove_tree(fs.join(out, WORK))
    timings = {"count_s": round(count_s, 2), "merge_s": round(merge_s, 2), "total_s": round(time.time() - started, 2)}
    outputs = {"tokenizer": "tokenizer.json", "vocab": "vocab.json", "merges": "merges.txt", "llmpipe": "llmpipe_tokenizer.json",
               "heldout": "heldout/part-*.jsonl.gz", "report": "report.md"}
    manifest = write_manifest(out, "tokenizer", plan.fingerprint, config, plan.inputs, counts, timings, outputs,
                              {"tokenizer": {k: v for k, v in figures.items() if k != "pattern_name"}})
    out = publish(out)
    log(f"tokenizer: vocabulary {tok.vocab_size} ({len(tok.merges)} merges) from {figures['train_bytes'] / 1e6:.1f} MB; "
        f"held-out {figures['heldout_bytes_per_token']:.2f} bytes/token; {timings['total_s']:.1f}s; report: {fs.join(out, 'report.md')}")
    return manifest
