"""The SFT and LoRA stages: supervised fine-tuning of a trained model on conversations.

    base model folder (05-pretrain/final) + conversations (chat / prompt-completion / Alpaca JSONL)
      ─► chat template, loss on assistant tokens ─► conversations packed into windows with
         document masks ─► the shared DeepSpeed trainer ─► 06-sft/ or 07-lora/

SFT trains every weight and exports `final/` (a full model). LoRA wraps the chosen linear layers
with adapters, trains only those, and exports `adapter/` in PEFT's layout plus `merged/` (the
adapters folded into the base weights). Both report held-out loss and exact match of greedy
answers against the references, before (the base model) and after training, per task.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from llmdata.chat import BadRow, ChatTemplate, Message, inputs_and_labels, prompt_and_reference, read_rows
from llmdata.packing import best_fit_plan
from pipelines.manifest import stage_fingerprint, write_manifest
from training.forgetting import PretrainMix, forgetting_rows, forgetting_summary, pretrain_data_dir, pretrain_val_loss
from training.options import AlignSection, LoraSection, SFTSection
from training.stage import folder_fingerprint, model_stage_inputs, TrainingInputError, complete_model_dir, finished, write_bad_rows, require, start_stage


class ConversationPack(Dataset):
    """Conversations (input ids, labels) packed best-fit into windows of seq_len, each keeping
    its own positions and document id so attention stays inside it."""

    def __init__(self, examples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int):
        self.examples = examples
        self.seq_len = seq_len
        self.pad_id = pad_id
        self.plan = best_fit_plan([len(inp) for inp, _ in examples], seq_len - 1)  # windows of seq_len

    def __len__(self) -> int:
        return self.plan.samples

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = self.seq_len
        ids = np.full(n, self.pad_id, dtype=np.int64)
        labels = np.full(n, -100, dtype=np.int64)
        positions = np.zeros(n, dtype=np.int64)
        docs = np.full(n, -1, dtype=np.int64)
        at = 0
        for k, (d, _, length) in enumerate(self.plan.segments[self.plan.sample_index[i] : self.plan.sample_index[i + 1]]):
            inp, lab = self.examples[int(d)]
            ids[at : at + length], labels[at : at + length] = inp, lab
            positions[at : at + length] = np.arange(length)
            docs[at : at + length] = k
            at += length
        return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels),
                "position_ids": torch.from_numpy(positions), "doc_ids": torch.from_numpy(docs)}


def load_conversations(path: str, template: ChatTemplate, seq_len: int):
    """Training pairs, the parsed rows (for evaluation), the bad rows, and how many were cut."""
    examples, rows, bad, truncated = [], [], [], 0
    for item in read_rows(path, "sft"):
        if isinstance(item, BadRow):
            bad.append(item)
            continue
        row, messages = item
        ids, mask = template.encode(messages)
        if len(ids) > seq_len + 1:
            ids, mask = ids[: seq_len + 1], mask[: seq_len + 1]
            truncated += 1
        inp, lab = inputs_and_labels(ids, mask)
        if all(t == -100 for t in lab):
            bad.append(BadRow(0, "no assistant token left after truncation to seq_len", ""))
            continue
        examples.append((inp, lab))
        rows.append((row.get("task", "all"), messages))
    return examples, rows, bad, truncated


@torch.no_grad()
def exact_match(model, template: ChatTemplate, rows: list[tuple[str, list[Message]]], limit: int,
                max_new_tokens: int) -> dict:
    """Greedy answers to the first `limit` held-out prompts against their reference answers."""
    from training.generate import Sampling, chat_reply

    model.eval()
    greedy = Sampling(max_new_tokens)
    hits: Counter = Counter()
    seen: Counter = Counter()
    examples = []
    for task, messages in rows[:limit]:
        context, reference = prompt_and_reference(messages)
        answer = chat_reply(model, template, context, greedy)
        ok = answer == (reference or "").strip()
        hits[task] += ok
        seen[task] += 1
        if len(examples) < 8:
            examples.append({"task": task, "prompt": context[-1]["content"], "reference": reference, "answer": answer, "ok": ok})
    total = sum(seen.values())
    return {"exact_match": sum(hits.values()) / total if total else None, "n": total,
            "by_task": {t: hits[t] / seen[t] for t in sorted(seen)}, "examples": examples}


def _em_rows(em: dict, label: str) -> dict:
    rows = {f"{label}: all tasks ({em['n']} prompts)": em["exact_match"]}
    rows.update({f"{label}: {task}": v for task, v in em["by_task"].items()})
    return rows


def run_finetune(stage: str, section: Union[SFTSection, LoraSection], base_dir: str, out: str, force: bool = False,
                 until_step: Optional[int] = None, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """The `sft` stage, or the `lora` stage when `section` is a LoraSection."""
    import torch.distributed as dist

    from llmdata.tokenizer_io import BPETokenizer
    from training.export import load_model, save_model
    from training.hf_export import export_stage_model
    from training.lora import (apply_lora, load_adapter_into, lora_flops_per_token, merge_lora, save_adapter, train_token_rows,
                               trainable_parameters)
    from training.loop import Trainer, seed_everything
    from training.report import write_training_report

    lora = isinstance(section, LoraSection)
    inputs = model_stage_inputs(stage, base_dir, {"train": section.train_file, "heldout": section.heldout_file})
    require(os.path.join(base_dir, "llmpipe_tokenizer.json"), "tokenizer beside the base model")
    mixed_from = pretrain_data_dir(section.pretrain_data, out) if section.pretrain_mix else None
    if mixed_from and os.path.isdir(mixed_from):  # replayed pretraining text is training data too
        inputs["pretrain_data"] = folder_fingerprint(mixed_from)
    config = section.model_dump(mode="json")
    fingerprint = stage_fingerprint(stage, config, inputs)
    done = finished(stage, out, fingerprint, force, log)
    if done:
        return done

    # Inputs and settings are read and checked before start_stage touches the folder.
    tokenizer = BPETokenizer.load(base_dir)
    template = ChatTemplate(tokenizer, section.train_on_prompt)
    pad = tokenizer.special_ids["<|pad|>"]
    examples, _, bad, truncated = load_conversations(section.train_file, template, section.seq_len)
    if not examples:
        raise TrainingInputError(f"{stage}: no usable conversation in {section.train_file} ({len(bad)} bad rows)")
    held_examples, held_rows, held_bad, _ = (load_conversations(section.heldout_file, template, section.seq_len)
                                             if section.heldout_file else ([], [], [], 0))
    train_set = conversations = ConversationPack(examples, section.seq_len, pad)
    val_set = ConversationPack(held_examples, section.seq_len, pad) if held_examples else None

    seed_everything(section.seed)
    model = load_model(base_dir)
    cfg = model.cfg
    if section.seq_len > cfg.max_seq_len:
        raise TrainingInputError(f"{stage}: seq_len {section.seq_len} is beyond the model's max_seq_len {cfg.max_seq_len}")
    token_ids = lora_token_ids(section, tokenizer, examples) if lora else ()
    pack_dir, pretrain_val, train_set = pretrain_data(stage, section, out, tokenizer, train_set)
    rank, say = start_stage(stage, out, fingerprint, force, log)
    before = exact_match(model, template, held_rows, section.eval_generate, section.max_new_tokens) if rank == 0 and held_rows else None
    forget_before = pretrain_val_loss(model, pretrain_val, section.forgetting_samples) if rank == 0 and pretrain_val else None
    model.train()
    if lora:
        apply_lora(model, list(section.targets), section.rank, section.alpha, section.dropout)
        train_token_rows(model, list(token_ids))
    trainable, total = trainable_parameters(model)
    model.checkpoint_activations = section.activation_checkpointing
    say(f"{stage}: {len(examples)} conversations ({len(bad)} bad rows, {truncated} truncated) packed into "
        f"{len(conversations)} windows of {section.seq_len}"
        + (f", {section.pretrain_mix:.0%} of the windows drawn from pretraining text" if section.pretrain_mix else "")
        + f"; training {trainable:,} of {total:,} parameters" + (f" ({len(token_ids)} token rows)" if lora else "")
        + f" -> {out}")
    flops = lora_flops_per_token(model, section.seq_len) if lora else cfg.flops_per_token(section.seq_len)
    trainer = Trainer(model, section, out, train_set, val_set, tokens_per_sample=section.seq_len,
                      flops_per_token=flops, fingerprint=fingerprint, log=say)
    summary, state = trainer.run(stage, cfg, until_step, progress)
    if not summary["finished"]:
        return summary

    manifest: dict = {}
    if rank == 0:
        outputs = {"metrics": "metrics.jsonl", "report": "report.md"}
        if lora:
            base_hf = os.path.join(os.path.dirname(os.path.abspath(base_dir)), "hf")  # the base stage's export
            adapter_dir = save_adapter(os.path.join(out, "adapter"), state, cfg, section.rank, section.alpha, section.dropout,
                                       list(section.targets), base_hf if os.path.isdir(base_hf) else os.path.abspath(base_dir),
                                       token_ids)
            tuned = load_adapter_into(load_model(base_dir), adapter_dir)  # the saved adapter, read back
            merged = os.path.join(out, "merged")
            save_model(merged, merge_lora(load_adapter_into(load_model(base_dir), adapter_dir)).state_dict(), cfg)
            final_dir = merged
            outputs.update(adapter="adapter/", merged="merged/model.safetensors")
        else:
            final_dir = os.path.join(out, "final")
            save_model(final_dir, state, cfg)
            tuned = load_model(final_dir)
            outputs.update(weights="final/model.safetensors")
        complete_model_dir(base_dir, final_dir, template.to_json())
        if section.export_hf and export_stage_model(final_dir, os.path.join(out, "hf"), say):
            outputs["hf"] = "hf/"
        after = exact_match(tuned, template, held_rows, section.eval_generate, section.max_new_tokens) if held_rows else None
        summary["exact_match_before"] = before["exact_match"] if before else None
        summary["exact_match_after"] = after["exact_match"] if after else None
        forgetting = forgetting_summary(
            forget_before, pretrain_val_loss(tuned, pretrain_val, section.forgetting_samples) if forget_before else None, pack_dir)
        summary["pretrain_val_loss_before"] = forgetting["before"] if forgetting else None
        summary["pretrain_val_loss_after"] = forgetting["after"] if forgetting else None
        bad_counts = write_bad_rows(out, section.train_file, bad)
        extra = {"Data quality": {"rows read": len(examples) + len(bad), "conversations used": len(examples),
                                  **{f"bad rows: {k}": v for k, v in sorted(bad_counts.items())},
                                  "truncated to seq_len": truncated, "held-out bad rows": len(held_bad)},
                 "Trainable parameters": {"trainable": trainable, "total": total, "share": f"{100 * trainable / total:.2f}%",
                                          **({"embedding/output rows trained": len(token_ids)} if lora else {})},
                 "Forgetting: next-token loss on the pretraining validation text":
                     forgetting_rows(forgetting, "base model", stage)}
        if section.pretrain_mix:
            extra["Data quality"]["pretraining mix (share of windows)"] = section.pretrain_mix
        if before and after:
            extra["Exact match on held-out prompts (greedy)"] = {**_em_rows(before, "base model"), **_em_rows(after, stage)}
        samples = [{"prompt": f"[{e['task']}] {e['prompt']}", "completion": f"\n→ {e['answer']}   (reference: {e['reference']})"}
                   for e in (after or {}).get("examples", [])]
        write_training_report(out, "Supervised fine-tuning" if not lora else "LoRA fine-tuning", section, cfg, summary, samples,
                              {"conversations": len(examples), "packed windows": len(train_set), "sequence length": section.seq_len,
                               "base model": base_dir, "training file": section.train_file,
                               "held-out file": section.heldout_file}, extra)
        counts = {"input": len(examples) + len(bad), "used": len(examples),
                  "bad": {"total": len(bad), "by_reason": dict(sorted(bad_counts.items()))},
                  "steps": summary["steps"], "trainable_parameters": trainable}
        manifest = write_manifest(out, stage, fingerprint, config, inputs,
                                  {k: v for k, v in counts.items() if k not in ("steps", "trainable_parameters")},
                                  {"wall_s": summary["wall_s"]}, outputs,
                                  {"summary": summary, "steps": summary["steps"], "trainable_parameters": trainable,
                                   "exact_match": {"before": before, "after": after}, "forgetting": forgetting,
                                   **({"train_token_ids": list(token_ids)} if lora else {})})
        say(f"{stage}: {summary['steps']} steps, val loss {summary.get('val_loss', float('nan')):.4f}, exact match "
            f"{_pct(summary['exact_match_before'])} -> {_pct(summary['exact_match_after'])}"
            + (f", pretraining val loss {forgetting['before']:.3f} -> {forgetting['after']:.3f}" if forgetting else "")
            + f"; see {out}/report.md")
    dist.barrier()
    return manifest


def lora_token_ids(section: LoraSection, tokenizer, examples: list[tuple[list[int], list[int]]]) -> tuple[int, ...]:
    """The token ids whose embedding/output rows LoRA trains (PEFT's trainable_token_indices),
    sorted: `train_tokens` (special token names, ids, or text whose tokens count) and, with
    `train_answer_tokens`, every target token of the training conversations. A name shaped like a
    special token that the tokenizer lacks, or an id outside the vocabulary, is a one-line error."""
    ids: set[int] = set()
    unknown, outside = [], []
    for item in section.train_tokens:
        if isinstance(item, int):
            (ids.add(item) if 0 <= item < tokenizer.vocab_size else outside.append(item))
        elif item in tokenizer.special_ids:
            ids.add(tokenizer.special_ids[item])
        elif item.startswith("<|") and item.endswith("|>"):
            unknown.append(item)
        elif item:
            ids.update(tokenizer.encode(item))
    if unknown:
        raise TrainingInputError(f"lora.train_tokens: {unknown} are not special tokens of the tokenizer "
                                 f"({', '.join(tokenizer.special_ids)})")
    if outside:
        raise TrainingInputError(f"lora.train_tokens: ids {outside} are outside the vocabulary (0..{tokenizer.vocab_size - 1})")
    if section.train_answer_tokens:
        ids.update(t for _, labels in examples for t in labels if t != -100)
    return tuple(sorted(ids))


def pretrain_data(stage: str, section: AlignSection, out: str, tokenizer, train_set):
    """(pack folder, its val split, the training set) for forgetting and replay: the val split is
    None when no pack folder is known (forgetting not measured); with `pretrain_mix` the training
    set becomes a PretrainMix over the pack's train split. A pack written with another tokenizer,
    or a mix without a pack folder, is a one-line error."""
    from training.data import PackedDataset, read_pack_info

    pack_dir = pretrain_data_dir(section.pretrain_data, out)
    mix = getattr(section, "pretrain_mix", 0.0)
    if pack_dir is None or not (section.forgetting_samples or mix):
        if mix:
            raise TrainingInputError(f"{stage}.pretrain_mix needs a pack stage folder: set {stage}.pretrain_data "
                                     f"(no 04-pack beside {out})")
        return None, None, train_set
    info = read_pack_info(pack_dir)
    if info["eot_id"] != tokenizer.eot_id or not 0 <= info["pad_id"] < tokenizer.vocab_size:
        raise TrainingInputError(f"{stage}: {pack_dir} was packed with another tokenizer than the base model's "
                                 f"(end-of-text id {info['eot_id']}, not {tokenizer.eot_id})")
    try:
        val = PackedDataset(pack_dir, "val") if section.forgetting_samples else None
        if mix:
            train_set = PretrainMix(train_set, PackedDataset(pack_dir, "train"), mix, train_set.seq_len)
    except FileNotFoundError as err:
        raise TrainingInputError(f"{stage}: {err}") from None
    return pack_dir, val, train_set


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
