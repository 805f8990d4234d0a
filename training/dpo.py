"""The DPO stage: direct preference optimization of a trained model on preference pairs.

    SFT model (policy, trained) + a frozen copy (reference) + {"prompt", "chosen", "rejected"} JSONL
      ─► log π(y|x) summed over the response's tokens ─► DPO loss ─► 09-dpo/final/

Loss per pair (Rafailov et al. 2023), with h = β·[(log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x))]:
−(1 − ε)·log σ(h) − ε·log σ(−h), ε the label smoothing of conservative DPO (0 = plain DPO).
The reference never changes, so its log-probabilities are computed once, before training, and
travel with each pair: no second model in memory or in the step (TRL's precompute_ref_log_probs).
They are computed through the DeepSpeed engine once it is built, so in the policy's precision
(under bf16 the policy and the reference are the same numbers at step 0).
β·(log π − log π_ref) is DPO's implicit reward; the held-out metrics are its pairwise accuracy,
mean rewards and margin, beside how often the policy itself ranks chosen above rejected by
log-likelihood, and exact match on held-out instructions so a policy that forgets shows it.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from llmdata.chat import ChatTemplate, inputs_and_labels
from pipelines.manifest import stage_fingerprint, write_manifest
from training.options import DPOSection
from training.stage import model_stage_inputs, TrainingInputError, complete_model_dir, finished, start_stage, write_bad_rows

#: One side of a pair: (input ids, labels with -100 outside the response)
Side = tuple[list[int], list[int]]


def sides(pairs: list[tuple[tuple[list[int], list[bool]], tuple[list[int], list[bool]]]]) -> list[tuple[Side, Side]]:
    """Each (ids, training mask) of a pair as next-token inputs and labels: the loss and the
    log-probabilities count the response tokens (and its end token) only."""
    return [(inputs_and_labels(*chosen), inputs_and_labels(*rejected)) for chosen, rejected in pairs]


def pad_sides(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen sequences then rejected ones, right-padded to the longest (labels with -100)."""
    seqs = [it["chosen"] for it in items] + [it["rejected"] for it in items]
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (ids, lab) in enumerate(seqs):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
    batch = {"input_ids": input_ids, "labels": labels}
    if "ref" in items[0]:
        batch["ref"] = torch.tensor([it["ref"][0] for it in items] + [it["ref"][1] for it in items], dtype=torch.float64)
    return batch


def sequence_logps(model: Callable, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over each row's labelled positions, in fp32."""
    logits = model(input_ids)["logits"].float()
    picked = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * (labels != -100)).sum(-1)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-pair DPO loss from [chosen..., rejected...] sequence log-probabilities."""
    half = policy.size(0) // 2
    ratio = policy - reference.to(policy.dtype)
    h = beta * (ratio[:half] - ratio[half:])
    return -(1 - label_smoothing) * F.logsigmoid(h) - label_smoothing * F.logsigmoid(-h)


class PreferenceSet(Dataset):
    def __init__(self, pairs: list[tuple[Side, Side]], ref: Optional[list[tuple[float, float]]] = None):
        self.pairs = pairs
        self.ref = ref

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        chosen, rejected = self.pairs[i]
        item = {"chosen": chosen, "rejected": rejected}
        if self.ref is not None:
            item["ref"] = self.ref[i]
        return item


@torch.no_grad()
def pair_logps(model, pairs: list[tuple[Side, Side]], pad_id: int, batch: int = 32,
               device: Optional[torch.device] = None) -> list[tuple[float, float]]:
    """(log π(chosen|x), log π(rejected|x)) of every pair under `model` (a module or a DeepSpeed
    engine, whose batches go to `device`), in eval mode; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    out: list[tuple[float, float]] = []
    for start in range(0, len(pairs), batch):
        items = [{"chosen": c, "rejected": r} for c, r in pairs[start : start + batch]]
        padded = pad_sides(items, pad_id)
        if device is not None:
            padded = {k: v.to(device) for k, v in padded.items()}
        logps = sequence_logps(model, padded["input_ids"], padded["labels"]).tolist()
        out += list(zip(logps[: len(items)], logps[len(items):]))
    model.train(was_training)
    return out


def preference_metrics(policy: list[tuple[float, float]], reference: list[tuple[float, float]], tasks: list[str],
                       beta: float) -> dict:
    """Implicit-reward accuracy, mean rewards and margin, and the policy's own log-likelihood
    ranking, overall and per task."""
    n = len(policy)
    if not n:
        return {"pairs": 0}
    rewards = [(beta * (pc - rc), beta * (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, reference)]
    reward_right = [c > r for c, r in rewards]
    ranked_right = [pc > pr for pc, pr in policy]

    def per_task(right: list[bool]) -> dict[str, float]:
        groups: dict[str, list[bool]] = {}
        for task, ok in zip(tasks, right):
            groups.setdefault(task, []).append(ok)
        return {t: sum(v) / len(v) for t, v in sorted(groups.items())}

    return {"pairs": n, "reward_accuracy": sum(reward_right) / n, "loglik_accuracy": sum(ranked_right) / n,
            "mean_chosen_reward": sum(c for c, _ in rewards) / n, "mean_rejected_reward": sum(r for _, r in rewards) / n,
            "mean_margin": sum(c - r for c, r in rewards) / n,
            "by_task": per_task(reward_right), "loglik_by_task": per_task(ranked_right)}


def run_dpo(section: DPOSection, base_dir: str, out: str, force: bool = False, until_step: Optional[int] = None,
            log: Callable[[str], None] = print, progress: bool = True) -> dict:
    import torch.distributed as dist

    from llmdata.tokenizer_io import BPETokenizer
    from training.export import load_model, save_model
    from training.finetune import _em_rows, _pct, exact_match, load_conversations, pretrain_data
    from training.forgetting import forgetting_rows, forgetting_summary, pretrain_val_loss
    from training.hf_export import export_stage_model
    from training.loop import Trainer, pair_count, seed_everything
    from training.report import write_training_report
    from training.reward import read_pairs

    inputs = model_stage_inputs("dpo", base_dir, {"train": section.train_file, "heldout": section.heldout_file,
                                                  "eval": section.eval_file})
    config = section.model_dump(mode="json")
    fingerprint = stage_fingerprint("dpo", config, inputs)
    done = finished("dpo", out, fingerprint, force, log)
    if done:
        return done

    # Inputs and settings are read and checked before start_stage touches the folder.
    tokenizer = BPETokenizer.load(base_dir)
    template = ChatTemplate(tokenizer)
    pad = tokenizer.special_ids["<|pad|>"]
    raw, _, bad, cut = read_pairs(section.train_file, template, section.max_len, masks=True)
    if not raw:
        raise TrainingInputError(f"dpo: no usable preference pair in {section.train_file} ({len(bad)} bad rows)")
    held_raw, held_tasks, held_bad, _ = (read_pairs(section.heldout_file, template, section.max_len, masks=True)
                                         if section.heldout_file else ([], [], [], 0))
    pairs, held = sides(raw), sides(held_raw)
    eval_rows = load_conversations(section.eval_file, template, section.max_len)[1] if section.eval_file else []

    seed_everything(section.seed)
    model = load_model(base_dir)
    cfg = model.cfg
    if section.max_len > cfg.max_seq_len:
        raise TrainingInputError(f"dpo: max_len {section.max_len} is beyond the model's max_seq_len {cfg.max_seq_len}")
    pack_dir, pretrain_val, _ = pretrain_data("dpo", section, out, tokenizer, None)
    rank, say = start_stage("dpo", out, fingerprint, force, log)
    say(f"dpo: {len(pairs)} preference pairs ({len(bad)} bad rows, {cut} cut to max_len); reference log-probabilities "
        f"from {base_dir} -> {out}")
    em_before = (exact_match(model, template, eval_rows, section.eval_generate, section.max_new_tokens)
                 if rank == 0 and eval_rows else None)
    # the fp32 reference on held-out pairs, for the fp32 final weights' metrics after training
    ref_held_fp32 = pair_logps(model, held, pad) if rank == 0 and held else []
    forget_before = pretrain_val_loss(model, pretrain_val, section.forgetting_samples) if rank == 0 and pretrain_val else None
    model.train()
    model.checkpoint_activations = section.activation_checkpointing

    def loss_fn(engine, batch):
        losses = dpo_loss(sequence_logps(engine, batch["input_ids"], batch["labels"]), batch["ref"], section.beta,
                          section.label_smoothing)
        return losses.sum(), torch.tensor(losses.numel(), device=losses.device)

    pair_tokens = sum(len(c[0]) + len(r[0]) for c, r in pairs) / len(pairs)
    train_set, held_set = PreferenceSet(pairs), PreferenceSet(held) if held else None
    trainer = Trainer(model, section, out, train_set, held_set,
                      tokens_per_sample=pair_tokens, flops_per_token=cfg.flops_per_token(section.max_len),
                      loss_fn=loss_fn, collate=lambda items: pad_sides(items, pad), fingerprint=fingerprint, log=say,
                      perplexity=False, count_fn=pair_count)
    # The reference is the starting policy as the engine runs it (its precision: bf16 weights under
    # bf16), computed before a resume loads trained weights: at step 0, policy == reference exactly,
    # not up to the rounding between an fp32 module and its bf16 copy. Its log-probs never change.
    train_set.ref = pair_logps(trainer.engine, pairs, pad, device=trainer.engine.device)
    ref_held = pair_logps(trainer.engine, held, pad, device=trainer.engine.device) if held else []
    if held_set is not None:
        held_set.ref = ref_held
    before = preference_metrics(ref_held, ref_held, held_tasks, section.beta) if held else None
    summary, state = trainer.run("dpo", cfg, until_step, progress)
    if not summary["finished"]:
        return summary
    manifest: dict = {}
    if rank == 0:
        final = os.path.join(out, "final")
        save_model(final, state, cfg)
        complete_model_dir(base_dir, final, template.to_json())
        outputs = {"weights": "final/model.safetensors", "metrics": "metrics.jsonl", "report": "report.md"}
        if section.export_hf and export_stage_model(final, os.path.join(out, "hf"), say):
            outputs["hf"] = "hf/"
        tuned = load_model(final)
        after = preference_metrics(pair_logps(tuned, held, pad), ref_held_fp32, held_tasks, section.beta) if held else None
        em_after = exact_match(tuned, template, eval_rows, section.eval_generate, section.max_new_tokens) if eval_rows else None
        summary.update(reward_accuracy_after=after["reward_accuracy"] if after else None,
                       loglik_accuracy_before=before["loglik_accuracy"] if before else None,
                       loglik_accuracy_after=after["loglik_accuracy"] if after else None,
                       exact_match_before=em_before["exact_match"] if em_before else None,
                       exact_match_after=em_after["exact_match"] if em_after else None)
        forgetting = forgetting_summary(
            forget_before, pretrain_val_loss(tuned, pretrain_val, section.forgetting_samples) if forget_before else None, pack_dir)
        bad_counts = write_bad_rows(out, section.train_file, bad)
        extra: dict = {"Data quality": {"rows read": len(pairs) + len(bad), "pairs used": len(pairs),
                                        **{f"bad rows: {k}": v for k, v in sorted(bad_counts.items())},
                                        "cut to max_len": cut, "held-out bad rows": len(held_bad)},
                       "Forgetting: next-token loss on the pretraining validation text": forgetting_rows(forgetting, "reference", "dpo")}
        if after:
            extra["Held-out pairs"] = {
                "implicit reward accuracy (β·log π/π_ref, chosen > rejected)": after["reward_accuracy"],
                "log-likelihood ranking accuracy: reference": before["loglik_accuracy"],
                "log-likelihood ranking accuracy: DPO policy": after["loglik_accuracy"],
                "mean chosen reward": after["mean_chosen_reward"], "mean rejected reward": after["mean_rejected_reward"],
                "mean margin": after["mean_margin"],
                **{f"implicit reward accuracy: {t}": v for t, v in after["by_task"].items()}}
        if em_before and em_after:
            extra["Exact match on held-out prompts (greedy)"] = {**_em_rows(em_before, "reference"), **_em_rows(em_after, "dpo")}
        samples = [{"prompt": f"[{e['task']}] {e['prompt']}", "completion": f"\n→ {e['answer']}   (reference: {e['reference']})"}
                   for e in (em_after or {}).get("examples", [])]
        write_training_report(out, "Direct preference optimization", section, cfg, summary, samples,
                              {"pairs": len(pairs), "held-out pairs": len(held), "beta": section.beta,
                               "label smoothing": section.label_smoothing, "max length": section.max_len,
                               "base model (and reference)": base_dir, "training file": section.train_file}, extra)
        manifest = write_manifest(out, "dpo", fingerprint, config, inputs,
                                  {"input": len(pairs) + len(bad), "used": len(pairs),
                                   "bad": {"total": len(bad), "by_reason": dict(sorted(bad_counts.items()))}},
                                  {"wall_s": summary["wall_s"]}, outputs,
                                  {"summary": summary, "heldout": {"before": before, "after": after},
                                   "exact_match": {"before": em_before, "after": em_after}, "forgetting": forgetting})
        say(f"dpo: {summary['steps']} steps, held-out implicit reward accuracy {_pct(summary['reward_accuracy_after'])} "
            f"(log-likelihood ranking {_pct(summary['loglik_accuracy_before'])} -> {_pct(summary['loglik_accuracy_after'])}), "
            f"exact match {_pct(summary['exact_match_before'])} -> {_pct(summary['exact_match_after'])}; see {out}/report.md")
    dist.barrier()
    return manifest
