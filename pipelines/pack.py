"""The pack stage: encode documents with the trained tokenizer, append end-of-text, split
train/validation by a hash of the id, and write Megatron `.bin`/`.idx` shards with packing plans.

    input file i ─► read, split by hash of id, encode in a batch (tiktoken), write
                    train-0000i.bin/.idx/.plan.npz and val-0000i.* ─► figures per file

One input file becomes one shard per split, read, encoded and written by the same worker: the
stage moves no document through a shuffle, and the shards are the same on every run.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Callable, Iterator, Optional

import apache_beam as beam
import numpy as np

from llmdata.packing import PackOptions, best_fit_plan, concat_plan, token_dtype, write_indexed
from llmdata.reasons import Outcome, QuarantineField as Q, RecordField as F
from llmdata.records import FieldSpec, Quarantined
from llmdata.tokenizer_io import BPETokenizer
from pipelines import fs
from pipelines.beam_io import BAD, UNITS, Products, count_outcomes, detect_format, glob_base, iter_units, police_bad_records, relative_source
from pipelines.manifest import input_fingerprint, write_manifest
from pipelines.runner import beam_pipeline
from pipelines.stage import StageInputError, begin, outcome_counts, plan_stage, publish, read_products
from pipelines.tokenizer import is_heldout

WORK = "_work"


class PackFile(beam.DoFn):
    """Read one input file, then encode, write and plan its train and val shards.

    Main output: each shard's figures; `bad`: quarantine entries; `units`: (file, units read).
    """

    def __init__(self, tokenizer_dir: str, out: str, opts: PackOptions, base: str):
        self.tokenizer_dir = tokenizer_dir
        self.out = out
        self.opts = opts
        self.base = base

    def setup(self) -> None:
        self.tok = BPETokenizer.load(self.tokenizer_dir)

    def process(self, item: tuple[int, str]) -> Iterator:
        index, path = item
        source = relative_source(path, self.base)
        splits: dict[str, list[dict]] = {Outcome.TRAIN: [], Outcome.VAL: []}
        units = 0
        for unit in iter_units(path, detect_format(path, "auto"), "file", FieldSpec(), source):
            units += 1
            if isinstance(unit, Quarantined):
                yield beam.pvalue.TaggedOutput(BAD, unit.to_json())
            else:
                splits[Outcome.VAL if is_heldout(unit[F.ID], self.opts.val_fraction) else Outcome.TRAIN].append(unit)
        yield beam.pvalue.TaggedOutput(UNITS, (source, units))
        for split, records in splits.items():
            if records:
                yield self._write(split, index, records)

    def _write(self, split: str, shard: int, records: list[dict]) -> dict:
        started = time.time()
        encoded = self.tok.encode_arrays([r[F.TEXT] for r in records], threads=self.opts.encode_threads)
        eot = np.array([self.tok.eot_id], dtype=np.uint32)
        docs = [np.concatenate((ids, eot)) for ids in encoded]
        encode_s = time.time() - started
        dtype = token_dtype(self.tok.vocab_size)
        lengths = [len(d) for d in docs]
        planner = best_fit_plan if self.opts.strategy == "best_fit" else concat_plan
        plan = planner(lengths, self.opts.seq_len)
        local = fs.is_local(self.out)
        name = f"{split}-{shard:05d}"
        folder = self.out if local else tempfile.mkdtemp(prefix="llmpipe-pack-")
        os.makedirs(folder, exist_ok=True)
        tokens = write_indexed(os.path.join(folder, name), docs, dtype)
        plan.save(os.path.join(folder, f"{name}.plan.npz"))
        if not local:
            for suffix in (".bin", ".idx", ".plan.npz"):
                with open(os.path.join(folder, name + suffix), "rb") as f:
                    fs.write_bytes_atomic(fs.join(self.out, name + suffix), f.read())
            shutil.rmtree(folder, ignore_errors=True)
        return {
            "split": split, "shard": name, "docs": len(docs), "tokens": tokens, "samples": plan.samples,
            "window": plan.window, "padding": plan.padding, "dropped": plan.dropped, "split_docs": plan.split_docs,
            "text_bytes": sum(len(r[F.TEXT].encode("utf-8")) for r in records), "encode_s": encode_s,
        }


def build_pipeline(p: beam.Pipeline, files: list[str], base: str, out: str, tokenizer_dir: str, opts: PackOptions,
                   policies: dict, default_policy: str) -> None:
    packed = (
        p
        | "Files" >> beam.Create(list(enumerate(files)))
        | "Pack" >> beam.ParDo(PackFile(tokenizer_dir, out, opts, base)).with_outputs(BAD, UNITS, main="figures")
    )
    quarantined, dropped = police_bad_records(packed[BAD], out, policies, default_policy)
    products = Products()
    products.add(packed.figures, "shard")
    count_outcomes(products, packed[UNITS], {Outcome.QUARANTINED: (quarantined, Q.REASON), Outcome.DROPPED: (dropped, Q.REASON)})
    products.write(fs.join(out, WORK))


def summarize(shards: list[dict]) -> dict:
    out = {}
    for split in (Outcome.TRAIN, Outcome.VAL):
        rows = [s for s in shards if s["split"] == split]
        slots = sum(s["samples"] * s["window"] for s in rows)
        docs = sum(s["docs"] for s in rows)
        out[split] = {
            "shards": len(rows), "docs": docs, "tokens": sum(s["tokens"] for s in rows), "samples": sum(s["samples"] for s in rows),
            "padding_fraction": (sum(s["padding"] for s in rows) / slots) if slots else 0.0,
            "dropped_tokens": sum(s["dropped"] for s in rows),
            "split_doc_fraction": (sum(s["split_docs"] for s in rows) / docs) if docs else 0.0,
            "text_bytes": sum(s["text_bytes"] for s in rows),
        }
    return out


def write_report(out: str, summary: dict, opts: PackOptions, tok: BPETokenizer) -> None:
    lines = [
        "# Pack stage report",
        "",
        f"Strategy `{opts.strategy}`, seq_len {opts.seq_len} (windows of {opts.seq_len + 1} tokens), vocabulary "
        f"{tok.vocab_size} stored as {token_dtype(tok.vocab_size).name}; end-of-text id {tok.eot_id} after each document.",
        "",
        "| split | documents | tokens | bytes/token | samples | padding | documents split | tokens dropped (tail) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for split, s in summary.items():
        bpt = s["text_bytes"] / max(s["tokens"] - s["docs"], 1)
        lines.append(f"| {split} | {s['docs']} | {s['tokens']} | {bpt:.2f} | {s['samples']} | {s['padding_fraction']:.2%} | "
                     f"{s['split_doc_fraction']:.2%} | {s['dropped_tokens']} |")
    lines.append("")
    fs.write_text(fs.join(out, "report.md"), "\n".join(lines) + "\n")


def run_pack(opts: PackOptions, pattern: str, tokenizer_dir: str, out: str, beam_args: list[str], policies: dict,
             default_policy: str, force: bool = False, upstream: Optional[str] = None,
             log: Callable[[str], None] = print) -> dict:
    if not fs.exists(fs.join(tokenizer_dir, "llmpipe_tokenizer.json")):
        raise StageInputError(f"no trained tokenizer in {tokenizer_dir} (run `llmpipe tokenizer` first)")
    config = opts.model_dump(mode="json")
    plan = plan_stage("pack", config, pattern, out, force, {"tokenizer": input_fingerprint(tokenizer_dir)}, upstream, log=log)
    if plan.up_to_date:
        return plan.up_to_date
    out = begin(out, plan, "pack", log)  # a fresh <out>.partial; the previous output stays until publish
    started = time.time()
    with beam_pipeline(beam_args) as p:
        build_pipeline(p, plan.files, glob_base(pattern), out, tokenizer_dir, opts, policies, default_policy)
    products = read_products(fs.join(out, WORK))
    shards = sorted(products.values("shard"), key=lambda s: s["shard"])
    summary = summarize(shards)
    tok = BPETokenizer.load(tokenizer_dir)
    write_report(out, summary, opts, tok)
    fs.write_json(fs.join(out, "shards.json"), {"shards": shards, "summary": summary, "seq_len": opts.seq_len,
                                                  "strategy": opts.strategy, "eot_id": tok.eot_id, "pad_id": tok.special_ids["<|pad|>"]})
    fs.remove_tree(fs.join(out, WORK))
    counts = {**outcome_counts(products, (), (Outcome.QUARANTINED, Outcome.DROPPED)),
              Outcome.TRAIN: summary[Outcome.TRAIN]["docs"], Outcome.VAL: summary[Outcome.VAL]["docs"]}
    timings = {"total_s": round(time.time() - started, 2), "encode_s": round(sum(s["encode_s"] for s in shards), 2)}
    outputs = {"train": "train-*.bin/.idx/.plan.npz", "val": "val-*.bin/.idx/.plan.npz", "shards": "shards.json", "report": "report.md"}
    manifest = write_manifest(out, "pack", plan.fingerprint, config, plan.inputs, counts, timings, outputs, {"summary": summary})
    out = publish(out)
    t = summary[Outcome.TRAIN]
    log(f"pack: {t['docs']} train / {summary['val']['docs']} val documents, {t['tokens']} train tokens in {t['samples']} samples "
        f"(padding {t['padding_fraction']:.2%}); {timings['total_s']:.1f}s; report: {fs.join(out, 'report.md')}")
    return manifest
