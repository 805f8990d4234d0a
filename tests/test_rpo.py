"""RPO: DPO plus rpo_alpha x the chosen responses' next-token loss (Pang et al. 2024), each term a
mean over its own unit across the optimizer step (pairs; chosen target tokens)."""
import json
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from llmdata.chat import ChatTemplate
from llmdata.sample_tasks import write_tasks
from llmdata.tokenizer_io import BPETokenizer
from pipelines.cli import main
from training.dpo import DPORecipe, chosen_nll, dpo_loss, pad_sides, pair_logps, sequence_logps, sides
from training.export import load_model
from training.model import ModelConfig, Transformer
from training.options import DPOSection
from training.reward import read_pairs


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    write_tasks(str(folder), seed=0, train=200, heldout=20)
    return folder


def tiny_batch() -> tuple[Transformer, dict, list]:
    """A 2-layer model and two pairs whose chosen responses have 2 and 4 target tokens."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=31, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, max_seq_len=16,
                                    ffn_multiple_of=8)).eval()
    # (ids, training mask): the prompt is 3 tokens, then the response
    raw = [(([1, 2, 3, 4, 5], [False] * 3 + [True] * 2), ([1, 2, 3, 6, 7, 8], [False] * 3 + [True] * 3)),
           (([9, 10, 3, 11, 12, 13, 14], [False] * 3 + [True] * 4), ([9, 10, 3, 15], [False] * 3 + [True]))]
    pairs = sides(raw)
    items = [{"chosen": c, "rejected": r, "ref": (-5.0 - i, -6.0 + i)} for i, (c, r) in enumerate(pairs)]
    return model, pad_sides(items, pad_id=0), raw


def by_hand_logp(model, ids: list[int], mask: list[bool]) -> tuple[float, int]:
    """Sum of log p over the masked tokens of one unpadded sequence, and how many there were."""
    with torch.no_grad():
        logits = model(torch.tensor([ids]))["logits"][0].double().log_softmax(-1)
    picked = [float(logits[t - 1, ids[t]]) for t in range(1, len(ids)) if mask[t]]
    return sum(picked), len(picked)


def test_rpo_loss_by_hand_is_dpo_plus_alpha_times_the_token_mean_nll_of_chosen():
    """loss_fn gives [Σ DPO, α Σ −log π(chosen tokens)] over [pairs, chosen tokens], and count_fn the
    same counts before any forward pass; the trainer's value sum/count is mean DPO + α mean NLL."""
    model, batch, raw = tiny_batch()
    beta, alpha = 0.5, 0.7
    recipe = DPORecipe(DPOSection(beta=beta, rpo_alpha=alpha), base_dir="unused", out="unused")
    with torch.no_grad():
        sums, counts = recipe.loss_fn(model, batch)
    sides_by_hand = [by_hand_logp(model, *side) for pair in raw for side in pair]  # c1, r1, c2, r2
    (c1, n1), (r1, _), (c2, n2), (r2, _) = sides_by_hand
    h = [beta * ((c1 + 5.0) - (r1 + 6.0)), beta * ((c2 + 6.0) - (r2 + 5.0))]
    dpo = [-math.log(1 / (1 + math.exp(-x))) for x in h]
    assert (n1, n2) == (2, 4)  # the response tokens after the prompt's last one: 2 and 4 targets
    assert counts.tolist() == [2, n1 + n2]
    assert sums[0].item() == pytest.approx(sum(dpo), rel=1e-5)
    assert sums[1].item() == pytest.approx(alpha * -(c1 + c2), rel=1e-5)
    assert torch.equal(recipe.rpo_count(batch), counts.cpu())
    value = (sums / counts).sum().item()
    assert value == pytest.approx(sum(dpo) / 2 + alpha * -(c1 + c2) / (n1 + n2), rel=1e-5)
    # token-weighted, not TRL's mean of per-sequence means: the two differ here (2 and 4 tokens)
    assert abs(-(c1 + c2) / (n1 + n2) - (-(c1 / n1) - (c2 / n2)) / 2) > 1e-3


def test_rpo_alpha_0_is_exactly_the_plain_dpo_loss_and_count():
    """With rpo_alpha 0 (the default) loss_fn returns the old single term bit for bit, counted in pairs."""
    model, batch, _ = tiny_batch()
    recipe = DPORecipe(DPOSection(beta=0.5), base_dir="unused", out="unused")
    assert recipe.section.rpo_alpha == 0
    with torch.no_grad():
        sums, counts = recipe.loss_fn(model, batch)
        plain = dpo_loss(sequence_logps(model, batch["input_ids"], batch["labels"]), batch["ref"], 0.5).sum()
        rpo_sums, _ = DPORecipe(DPOSection(beta=0.5, rpo_alpha=1.0), "unused", "unused").loss_fn(model, batch)
    assert sums.dim() == 0 and torch.equal(sums, plain) and counts.item() == 2
    assert torch.equal(rpo_sums[0], plain)  # the DPO term itself is unchanged by the option
    with pytest.raises(ValidationError):
        DPOSection(rpo_alpha=-0.1)


def test_chosen_nll_is_per_token_over_the_chosen_responses():
    model, _, raw = tiny_batch()
    pairs = sides(raw)
    logps = pair_logps(model, pairs, pad_id=0)
    (c1, n1), _, (c2, n2), _ = [by_hand_logp(model, *side) for pair in raw for side in pair]
    assert chosen_nll(logps, pairs) == pytest.approx(-(c1 + c2) / (n1 + n2), rel=1e-5)
    assert chosen_nll([], []) is None


def test_rpo_stage_runs_end_to_end_with_the_step_wide_token_mean(pretrained, tasks, tmp_path):
    """A DPO run with rpo_alpha 1 over two micro batches per step: the first step's loss is log 2
    (policy == reference) plus the NLL of the step's chosen tokens averaged over all of them (not
    per micro batch); the model, report and manifest carry the chosen NLL before and after."""
    out = tmp_path / "09-dpo"
    prefs = tasks / "preferences"
    assert main(["dpo", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
                 "--no-progress", "--set", f"dpo.train_file={prefs / 'train.jsonl'}",
                 "--set", f"dpo.heldout_file={prefs / 'heldout.jsonl'}",
                 "--set", f"dpo.eval_file={tasks / 'sft' / 'heldout.jsonl'}", "--set", "dpo.eval_generate=2",
                 "--set", "dpo.max_new_tokens=4", "--set", "dpo.max_steps=4", "--set", "dpo.micro_batch=4",
                 "--set", "dpo.grad_accum=2", "--set", "dpo.precision=fp32", "--set", "dpo.lr=1e-3",
                 "--set", "dpo.rpo_alpha=1.0", "--set", "dpo.max_len=64", "--set", "dpo.eval_every=4", "--set", "dpo.export_hf=false",
                 "--set", "dpo.tensorboard=false"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    summary = manifest["summary"]
    nll = manifest["heldout"]["chosen_nll"]
    assert nll == {"before": summary["chosen_nll_before"], "after": summary["chosen_nll_after"]}
    assert 0 < nll["after"] < nll["before"]  # 4 steps of RPO at lr 1e-3 make the chosen answers likelier
    assert "chosen responses' NLL per token (nats): DPO policy" in (out / "report.md").read_text()

    # the first step's 8 pairs (seed 0's permutation), scored by the base model by hand
    base = str(pretrained / "final")
    template = ChatTemplate(BPETokenizer.load(base))
    raw, _, _, _ = read_pairs(str(prefs / "train.jsonl"), template, 64, masks=True)
    order = np.random.default_rng([0, 0]).permutation(len(raw))[:8]
    micro = [sides([raw[i] for i in order[:4]]), sides([raw[i] for i in order[4:]])]
    model = load_model(base)
    nll_sums = [-sum(c for c, _ in pair_logps(model, pairs, pad_id=0)) for pairs in micro]
    tokens = [sum(sum(t != -100 for t in c[1]) for c, _ in pairs) for pairs in micro]
    first = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line][0]
    step_mean = sum(nll_sums) / sum(tokens)
    assert first["loss"] == pytest.approx(math.log(2) + step_mean, abs=1e-4)
    per_micro_batch = sum(s / n for s, n in zip(nll_sums, tokens)) / 2  # TRL's weighting, for contrast
    assert abs(step_mean - per_micro_batch) > 1e-3 or tokens[0] == tokens[1]
