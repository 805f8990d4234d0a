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
from typing import Union

import numpy as np
import torch
from torch.utils.data import Dataset

from llmdata.chat import BadRow, ChatTemplate, inputs_and_labels, question_row, read_rows
from llmdata.packing import best_fit_plan
from training.exact_match import exact_match, exact_match_rows, overlap_rows, training_prompts
from training.forgetting import forgetting_rows
from training.options import LoraSection, SFTSection
from training.recipe import Outcome, TunedRecipe
from training.report import percent
from training.stage import TrainingInputError


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


def load_conversations(path: str, template: ChatTemplate, seq_len: int, questions: bool = False):
    """Training pairs, the parsed rows (for evaluation), the bad rows, and how many were cut.
    `questions`: the rows are held-out questions (exact match), so a row with nothing to ask
    (`llmdata.chat.question_row`) is a bad row too."""
    examples, rows, bad, truncated = [], [], [], 0
    for item in read_rows(path, "sft"):
        item = question_row(item) if questions else item
        if isinstance(item, BadRow):
            bad.append(item)
            continue
        ids, mask = template.encode(item.parsed)
        if len(ids) > seq_len + 1:
            ids, mask = ids[: seq_len + 1], mask[: seq_len + 1]
            truncated += 1
        inp, lab = inputs_and_labels(ids, mask)
        if all(t == -100 for t in lab):
            bad.append(BadRow(item.line, "no assistant token left after truncation to seq_len", item.text[:200]))
            continue
        examples.append((inp, lab))
        rows.append((item.row.get("task", "all"), item.parsed))
    return examples, rows, bad, truncated


class SFTRecipe(TunedRecipe):
    """Supervised fine-tuning of every weight on conversations, the loss on the assistant's tokens
    (and, with `pretrain_mix`, on pretraining windows mixed in); exact match before and after."""

    stage, title = "sft", "Supervised fine-tuning"
    section: Union[SFTSection, LoraSection]

    def prepare(self) -> None:
        section, stage = self.section, self.stage
        self.load_tokenizer(section.train_on_prompt)
        self.examples, train_rows, self.bad, self.truncated = load_conversations(section.train_file, self.template,
                                                                                  section.seq_len)
        self.train_prompts = training_prompts(messages for _, messages in train_rows)
        if not self.examples:
            raise TrainingInputError(f"{stage}: no usable conversation in {section.train_file} ({len(self.bad)} bad rows)")
        held_examples, self.held_rows, self.held_bad, _ = (
            load_conversations(section.heldout_file, self.template, section.seq_len, questions=True) if section.heldout_file
            else ([], [], [], 0))
        if section.heldout_file and not held_examples:  # configured but empty: exact match would silently be n/a
            raise TrainingInputError(f"{stage}: no usable conversation in {stage}.heldout_file {section.heldout_file} "
                                     f"({len(self.held_bad)} bad rows); fix it, or set {stage}.heldout_file: null")
        self.conversations = ConversationPack(self.examples, section.seq_len, self.pad)
        self.val_set = ConversationPack(held_examples, section.seq_len, self.pad) if held_examples else None
        self.model = self.load_base("seq_len")
        self.cfg = self.model.cfg
        self.token_ids = self.trained_token_ids()
        self.train_set = self.pretrain_text(self.conversations)

    def trained_token_ids(self) -> tuple[int, ...]:
        """The embedding/output rows trained beside the adapters (none for SFT, which trains all)."""
        return ()

    def model_to_train(self, rank: int) -> torch.nn.Module:
        from training.lora import trainable_parameters

        model, section = self.model, self.section
        self.before = (exact_match(model, self.template, self.held_rows, section.eval_generate, section.max_new_tokens,
                                   train_prompts=self.train_prompts) if rank == 0 and self.held_rows else None)
        self.measure_forgetting_before(model, rank)
        model.train()
        self.adapt(model)
        self.trainable, self.total = trainable_parameters(model)
        model.checkpoint_activations = section.activation_checkpointing
        return model

    def adapt(self, model: torch.nn.Module) -> None:
        """Change what trains before the engine is built (LoRA wraps layers in adapters)."""

    def describe(self) -> str:
        section = self.section
        return (f"{self.stage}: {len(self.examples)} conversations ({len(self.bad)} bad rows, {self.truncated} truncated) "
                f"packed into {len(self.conversations)} windows of {section.seq_len}"
                + (f", {section.pretrain_mix:.0%} of the windows drawn from pretraining text" if section.pretrain_mix else "")
                + f"; training {self.trainable:,} of {self.total:,} parameters" + self.trained_rows() + f" -> {self.out}")

    def trained_rows(self) -> str:
        return ""

    def trainer_kwargs(self) -> dict:
        return {"tokens_per_sample": self.section.seq_len, "flops_per_token": self.flops_per_token()}

    def flops_per_token(self) -> float:
        return self.cfg.flops_per_token(self.section.seq_len)

    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        from training.export import load_model, save_model

        save_model(self.final_dir(), state, self.cfg)
        self.tuned = load_model(self.final_dir())
        return self.final_dir(), {"weights": "final/model.safetensors"}

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        section, stage, before = self.section, self.stage, self.before
        after = (exact_match(self.tuned, self.template, self.held_rows, section.eval_generate, section.max_new_tokens,
                             train_prompts=self.train_prompts) if self.held_rows else None)
        summary["exact_match_before"] = before["exact_match"] if before else None
        summary["exact_match_after"] = after["exact_match"] if after else None
        forgetting = self.forgetting_after(self.tuned)
        summary["pretrain_val_loss_before"] = forgetting["before"] if forgetting else None
        summary["pretrain_val_loss_after"] = forgetting["after"] if forgetting else None
        used = len(self.examples)
        quality, counts = self.data_quality("conversations used", used, {"truncated to seq_len": self.truncated},
                                            self.held_bad)
        if section.pretrain_mix:
            quality["pretraining mix (share of windows)"] = section.pretrain_mix
        extra = {"Data quality": quality,
                 "Trainable parameters": {"trainable": self.trainable, "total": self.total,
                                          "share": f"{100 * self.trainable / self.total:.2f}%",
                                          **({"embedding/output rows trained": len(self.token_ids)}
                                             if self.trained_rows() else {})},
                 "Forgetting: next-token loss on the pretraining validation text": forgetting_rows(
                     forgetting, "base model", stage, self.section.forgetting_samples)}
        if before and after:
            extra["Exact match on held-out prompts (greedy)"] = {
                **overlap_rows(after), **exact_match_rows(before, "base model"),
                **exact_match_rows(after, stage)}
        samples = [{"prompt": f"[{e['task']}] {e['prompt']}", "completion": f"\n→ {e['answer']}   (reference: {e['reference']})"}
                   for e in (after or {}).get("examples", [])]
        data = {"conversations": used, "packed windows": len(self.train_set), "sequence length": section.seq_len,
                "base model": self.base_dir, "training file": section.train_file, "held-out file": section.heldout_file}
        line = (f"{stage}: {summary['steps']} steps, val loss {summary.get('val_loss', float('nan')):.4f}, exact match "
                f"{percent(summary['exact_match_before'])} -> {percent(summary['exact_match_after'])}"
                + (f", pretraining val loss {forgetting['before']:.3f} -> {forgetting['after']:.3f}" if forgetting else "")
                + f"; see {self.out}/report.md")
        manifest = {"steps": summary["steps"], "trainable_parameters": self.trainable,
                    "exact_match": {"before": before, "after": after}, "forgetting": forgetting,
                    **({"train_token_ids": list(self.token_ids)} if self.trained_rows() else {})}
        return Outcome(data, counts, line, extra, samples, manifest)


class LoraRecipe(SFTRecipe):
    """SFT through low-rank adapters (Hu et al. 2021) on the chosen linear layers, plus the
    embedding/output rows of `train_tokens`; saves the adapter in PEFT's layout and the merged model."""

    stage, title = "lora", "LoRA fine-tuning"
    section: LoraSection

    def trained_token_ids(self) -> tuple[int, ...]:
        return lora_token_ids(self.section, self.tokenizer, self.examples)

    def adapt(self, model: torch.nn.Module) -> None:
        from training.lora import apply_lora, train_token_rows

        apply_lora(model, list(self.section.targets), self.section.rank, self.section.alpha, self.section.dropout)
        train_token_rows(model, list(self.token_ids))

    def trained_rows(self) -> str:
        return f" ({len(self.token_ids)} token rows)"

    def flops_per_token(self) -> float:
        from training.lora import lora_flops_per_token

        return lora_flops_per_token(self.model, self.section.seq_len)

    def final_dir(self) -> str:
        return os.path.join(self.out, "merged")

    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        from training.export import load_model, save_model
        from training.lora import load_adapter_into, merge_lora, save_adapter

        section, base_dir = self.section, self.base_dir
        base_hf = os.path.join(os.path.dirname(os.path.abspath(base_dir)), "hf")  # the base stage's export
        adapter_dir = save_adapter(os.path.join(self.out, "adapter"), state, self.cfg, section.rank, section.alpha,
                                   section.dropout, list(section.targets),
                                   base_hf if os.path.isdir(base_hf) else os.path.abspath(base_dir), self.token_ids)
        self.tuned = load_adapter_into(load_model(base_dir), adapter_dir)  # the saved adapter, read back
        save_model(self.final_dir(), merge_lora(load_adapter_into(load_model(base_dir), adapter_dir)).state_dict(), self.cfg)
        return self.final_dir(), {"adapter": "adapter/", "merged": "merged/model.safetensors"}


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
