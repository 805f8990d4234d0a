"""Losses are means over the targets of the whole optimizer step, however it is split.

One global batch of sequences with very uneven target counts gives the same gradient (and the same
logged loss) in one micro batch, in k micro batches of one rank, and over two data-parallel ranks
(gloo on CPU, spawned here): the gradient of sum(token losses) / (targets in the step). The old
mean-of-micro-batch-means is off by a factor of several on such a batch.
"""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from training.engine import param_groups
from training.loop import Trainer, causal_lm_loss, pair_count
from training.model import ModelConfig, Transformer, token_loss
from training.options import TrainSection
from training.stage import TrainingDiverged

SEQ = 16
#: targets per sequence: 15, 1, 8, 2 (uneven, so a mean of means is visibly wrong)
TARGETS = [15, 1, 8, 2]


def tiny_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=SEQ,
                                   ffn_multiple_of=16))


def samples() -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for n in TARGETS:
        ids = torch.randint(0, 61, (SEQ + 1,), generator=g)
        labels = ids[1:].clone()
        labels[: SEQ - n] = -100  # the last n positions are targets (an SFT answer after its prompt)
        out.append({"input_ids": ids[:-1], "labels": labels})
    return out


def reference_gradient() -> tuple[torch.Tensor, float]:
    """The whole batch's token-mean gradient in plain PyTorch, flattened in the optimizer's group order."""
    model = tiny_model()
    batch = {k: torch.stack([s[k] for s in samples()]) for k in ("input_ids", "labels")}
    total, count = token_loss(model(batch["input_ids"])["logits"], batch["labels"])
    loss = total / count
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for g in param_groups(model, 0.1) for p in g["params"]]), float(loss)


def group_sizes() -> list[int]:
    return [sum(p.numel() for p in g["params"]) for g in param_groups(tiny_model(), 0.1)]


def step_gradient(micro_batch: int, grad_accum: int, zero_stage: int, folder: str) -> tuple[list[torch.Tensor], float]:
    """One optimizer step of the Trainer: the gradient AdamW is handed (DeepSpeed's, after its
    accumulation and data-parallel averaging; no clipping), per parameter group (under ZeRO this
    rank's padded partition of the group), and the logged loss."""
    section = TrainSection(micro_batch=micro_batch, grad_accum=grad_accum, zero_stage=zero_stage, grad_clip=0.0,
                           warmup_steps=0, max_steps=1, tensorboard=False, precision="fp32")
    trainer = Trainer(tiny_model(), section, folder, samples(), None, tokens_per_sample=SEQ, flops_per_token=1.0,
                      log=lambda _m: None)
    optimizer = trainer.engine.basic_optimizer  # the torch AdamW, under ZeRO too (over flat partitions)
    seen = []
    original = optimizer.step

    def capture(*args, **kwargs):
        seen.extend(torch.cat([p.grad.reshape(-1).clone() for p in g["params"]])
                    for g in optimizer.param_groups if g["params"])  # ZeRO 3 leaves the other groups empty
        return original(*args, **kwargs)

    optimizer.step = capture  # ZeRO 1-3 step it once per parameter group, with that group alone
    loss = trainer._train_step()
    assert len(seen) == len(group_sizes())
    return seen, loss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, folder: str, micro_batch: int, grad_accum: int, zero_stage: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), DS_ACCELERATOR="cpu")
    grad, loss = step_gradient(micro_batch, grad_accum, zero_stage, folder)
    torch.save({"grad": grad, "loss": loss}, os.path.join(folder, f"rank{rank}.pt"))


def two_rank_gradient(tmp_path, micro_batch: int, grad_accum: int, zero_stage: int) -> tuple[torch.Tensor, float]:
    """The step on two CPU ranks (gloo); ZeRO partitions of the gradient are put back together."""
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path), micro_batch, grad_accum, zero_stage), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert parts[0]["loss"] == pytest.approx(parts[1]["loss"], rel=1e-6)  # every rank logs the same step loss
    if zero_stage == 0:
        return parts[0]["grad"], parts[0]["loss"]
    return [torch.cat([p["grad"][i] for p in parts]) for i in range(len(group_sizes()))], parts[0]["loss"]


def _check(groups: list[torch.Tensor], loss: float, reference: tuple[torch.Tensor, float]) -> None:
    want, want_loss = reference
    grad = torch.cat([g[:n] for g, n in zip(groups, group_sizes())])  # ZeRO pads each flat group
    assert torch.allclose(grad, want, rtol=1e-4, atol=1e-7), f"relative error {float((grad - want).norm() / want.norm()):.3g}"
    assert loss == pytest.approx(want_loss, rel=1e-5)


@pytest.mark.parametrize("micro_batch,grad_accum", [(4, 1), (1, 4), (2, 2)])
@pytest.mark.parametrize("zero_stage", [0, 2, 3])
def test_one_rank_any_accumulation_gives_the_token_mean_gradient(tmp_path, micro_batch, grad_accum, zero_stage):
    _check(*step_gradient(micro_batch, grad_accum, zero_stage, str(tmp_path)), reference_gradient())


@pytest.mark.parametrize("zero_stage", [0, 1])
def test_two_ranks_give_the_token_mean_gradient(tmp_path, zero_stage):
    """Rank 0 holds 15 + 8 targets and rank 1 holds 1 + 2 (with 2 accumulation steps each)."""
    _check(*two_rank_gradient(tmp_path, 1, 2, zero_stage), reference_gradient())


def test_the_mean_of_micro_batch_means_is_far_off_on_this_batch():
    """What the test above guards against, measured: the old weighting on the same batch."""
    want, _ = reference_gradient()
    grads = []
    for s in samples():
        model = tiny_model()
        total, count = token_loss(model(s["input_ids"][None])["logits"], s["labels"][None])
        (total / count / len(TARGETS)).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for g in param_groups(model, 0.1) for p in g["params"]]))
    old = torch.stack(grads).sum(0)
    assert float((old - want).norm() / want.norm()) > 0.3


def test_a_loss_that_counts_otherwise_than_count_fn_is_refused(tmp_path):
    """The step's denominator comes from count_fn before any forward pass; a loss_fn that counts
    another unit would be mis-weighted, so the trainer stops."""
    section = TrainSection(micro_batch=2, zero_stage=0, warmup_steps=0, max_steps=1, tensorboard=False, precision="fp32")
    trainer = Trainer(tiny_model(), section, str(tmp_path), samples(), None, tokens_per_sample=SEQ, flops_per_token=1.0,
                      log=lambda _m: None, count_fn=pair_count)
    with pytest.raises(RuntimeError, match="mis-weighted"):
        trainer._train_step()


def test_metrics_log_the_learning_rate_each_step_used(tmp_path):
    """Step s trains with lr x lr_factor(s - 1) (the scheduler moves on inside engine.step()):
    metrics.jsonl says that rate, not the next step's."""
    from training.engine import lr_factor
    from training.metrics import read_metrics

    section = TrainSection(micro_batch=2, zero_stage=0, lr=1e-3, min_lr=1e-4, warmup_steps=3, max_steps=5, tensorboard=False,
                           precision="fp32", peak_tflops=1.0, eval_every=100, save_every=100)
    trainer = Trainer(tiny_model(), section, str(tmp_path), samples(), None, tokens_per_sample=SEQ, flops_per_token=1.0,
                      log=lambda _m: None)
    trainer.fit(progress=False)
    logged = {r["step"]: r["lr"] for r in read_metrics(str(tmp_path / "metrics.jsonl")) if r["event"] == "train"}
    assert logged == pytest.approx({s: 1e-3 * lr_factor(s - 1, section) for s in range(1, 6)}, rel=1e-9)


def _overflowing(bad_calls: range):
    """causal_lm_loss with, on the calls in `bad_calls`, a weight beyond float32 (an rl.kl_coef of
    1e39): an infinite loss and non-finite gradients."""
    calls = iter(range(10 ** 6))

    def loss_fn(model, batch):
        total, count = causal_lm_loss(model, batch)
        return (total * torch.tensor(1e39) if next(calls) in bad_calls else total), count
    return loss_fn


def _diverging_trainer(folder, zero_stage: int, bad_calls: range, log=lambda _m: None) -> Trainer:
    section = TrainSection(micro_batch=2, zero_stage=zero_stage, warmup_steps=0, max_steps=3, tensorboard=False,
                           precision="fp32", eval_every=100, save_every=100)
    return Trainer(tiny_model(), section, str(folder), samples(), None, tokens_per_sample=SEQ, flops_per_token=1.0,
                   log=log, loss_fn=_overflowing(bad_calls))


def test_a_run_whose_every_step_was_skipped_fails_and_leaves_no_final_checkpoint(tmp_path):
    """ZeRO skips a step with non-finite gradients; a run of nothing but skipped steps ended
    "complete" with the starting weights. A rerun must not find a finished run's checkpoint."""
    trainer = _diverging_trainer(tmp_path, zero_stage=1, bad_calls=range(10 ** 6))
    with pytest.raises(TrainingDiverged, match="none of the 3 optimizer steps trained: each had a non-finite loss"):
        trainer.fit(progress=False)
    assert trainer.engine.skipped_steps == 3 and not (tmp_path / "checkpoints").exists()


def test_a_non_finite_step_the_optimizer_applies_fails_at_once(tmp_path):
    """Without ZeRO nothing skips it: the weights turn non-finite (RL then sampled from nan
    probabilities, a traceback)."""
    trainer = _diverging_trainer(tmp_path, zero_stage=0, bad_calls=range(1, 2))
    with pytest.raises(TrainingDiverged, match="step 2: the loss is inf and the optimizer applied the step"):
        trainer.fit(progress=False)


def test_one_skipped_step_of_a_run_is_no_failure_but_is_said_and_counted(tmp_path):
    said: list[str] = []
    trainer = _diverging_trainer(tmp_path, zero_stage=1, bad_calls=range(1, 2), log=said.append)
    summary = trainer.fit(progress=False)
    assert summary["finished"] and trainer.engine.skipped_steps == 1 and summary["failed_steps"] == 1
    assert [m for m in said if m.startswith("warning:")] == [
        "warning: 1 of 3 optimizer steps did not train (a non-finite loss, or non-finite gradients the optimizer "
        "skipped); the report counts them"]


def test_a_run_without_failed_steps_says_nothing_of_them(tmp_path):
    said: list[str] = []
    summary = _diverging_trainer(tmp_path, zero_stage=1, bad_calls=range(0), log=said.append).fit(progress=False)
    assert summary["failed_steps"] == 0 and not [m for m in said if m.startswith("warning:")]


def test_failed_steps_before_a_resume_are_still_counted(tmp_path):
    """The count is kept in the checkpoints: a step skipped before --until-step (or a signal) is in
    the finished run's summary, warning and report, not lost at the resume."""
    def trainer(bad_calls: range, said: list) -> Trainer:
        section = TrainSection(micro_batch=2, zero_stage=1, warmup_steps=0, max_steps=4, tensorboard=False,
                               precision="fp32", eval_every=100, save_every=1)
        return Trainer(tiny_model(), section, str(tmp_path), samples(), None, tokens_per_sample=SEQ,
                       flops_per_token=1.0, log=said.append, loss_fn=_overflowing(bad_calls))

    assert trainer(range(0, 1), []).fit(until_step=2, progress=False)["failed_steps"] == 1
    said: list[str] = []
    resumed = trainer(range(0), said)
    assert resumed.resume()
    summary = resumed.fit(progress=False)
    assert summary["finished"] and summary["failed_steps"] == 1 and summary["failed_from"] == 0
    assert [m for m in said if m.startswith("warning:")] == [
        "warning: 1 of 4 optimizer steps did not train (a non-finite loss, or non-finite gradients the optimizer "
        "skipped); the report counts them"]


def _with_positions(items: list[dict]) -> list[dict]:
    """The pipeline passes position and document ids between stages: one document a sample."""
    return [{**s, "position_ids": torch.arange(SEQ), "doc_ids": torch.zeros(SEQ, dtype=torch.long)} for s in items]


def _pipe_rank_main(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), DS_ACCELERATOR="cpu")
    torch.set_num_threads(1)
    from training.engine import setup_distributed
    from training.options import PretrainSection
    from training.pipe import build_pipeline, load_transformer_state

    setup_distributed()  # the PipelineModule places its layers by rank
    reference = tiny_model()
    pipe = build_pipeline(reference.cfg, num_stages=2)
    load_transformer_state(pipe, reference.state_dict(), reference.cfg)
    section = PretrainSection(micro_batch=1, grad_accum=2, pipeline_stages=2, zero_stage=0, warmup_steps=0, max_steps=3,
                              eval_batches=2, tensorboard=False, precision="fp32")
    data = _with_positions(samples())
    trainer = Trainer(pipe, section, folder, data, data, tokens_per_sample=SEQ, flops_per_token=1.0, log=lambda _m: None)
    assert trainer.dp_world == 2
    val = trainer.evaluate()["val_loss"]
    losses = [trainer._train_step() for _ in range(3)]
    torch.save({"val": val, "losses": losses}, os.path.join(folder, f"rank{rank}.pt"))


def test_pipeline_with_two_replicas_weights_every_target(tmp_path):
    """Two pipeline stages x two data-parallel replicas (four gloo ranks): the validation loss is
    the token mean over both replicas' batches (rank 1's replica holds the 1- and 2-target
    sequences, rank 0's the 15 and 8), and the training losses are the token-weighted ones of one
    rank holding the whole batch."""
    mp.spawn(_pipe_rank_main, args=(4, _free_port(), str(tmp_path)), nprocs=4, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(4)]
    model = tiny_model()
    with torch.no_grad():
        batch = {k: torch.stack([s[k] for s in samples()]) for k in ("input_ids", "labels")}
        total, count = token_loss(model(batch["input_ids"])["logits"], batch["labels"])
    section = TrainSection(micro_batch=4, zero_stage=0, warmup_steps=0, max_steps=3, tensorboard=False, precision="fp32")
    one_rank = Trainer(tiny_model(), section, str(tmp_path / "one"), samples(), None, tokens_per_sample=SEQ,
                       flops_per_token=1.0, log=lambda _m: None)
    want = [one_rank._train_step() for _ in range(3)]
    for r in results:
        assert r["val"] == pytest.approx(float(total / count), rel=1e-5)
        assert r["losses"] == pytest.approx(want, rel=1e-4)


def _two_terms(model, batch):
    """A loss of two units, as the reward model's (pairs and language-model tokens): a per-sequence
    term (the squared mean logit at the first position) and the next-token loss."""
    logits = model(batch["input_ids"])["logits"]
    per_sequence = logits[:, 0].float().mean(-1) ** 2
    tokens, count = token_loss(logits, batch["labels"])
    return (torch.stack([per_sequence.sum(), 0.5 * tokens]),
            torch.stack([torch.tensor(per_sequence.numel()), count]))


def _two_term_count(batch):
    return torch.stack([torch.tensor(batch["input_ids"].size(0)), (batch["labels"] != -100).sum()])


def test_a_loss_of_two_units_averages_each_over_the_whole_step(tmp_path):
    """Each term is the mean over its own unit across the step's micro batches, as the reward
    model's pairwise and language-model terms are."""
    model = tiny_model()
    batch = {k: torch.stack([s[k] for s in samples()]) for k in ("input_ids", "labels")}
    sums, counts = _two_terms(model, batch)
    want_loss = (sums / counts).sum()
    want_loss.backward()
    want = torch.cat([p.grad.reshape(-1) for g in param_groups(model, 0.1) for p in g["params"]])
    section = TrainSection(micro_batch=1, grad_accum=4, zero_stage=0, grad_clip=0.0, warmup_steps=0, max_steps=1,
                           tensorboard=False, precision="fp32")
    trainer = Trainer(tiny_model(), section, str(tmp_path), samples(), None, tokens_per_sample=SEQ, flops_per_token=1.0,
                      log=lambda _m: None, loss_fn=_two_terms, count_fn=_two_term_count)
    seen = []
    original = trainer.engine.basic_optimizer.step
    trainer.engine.basic_optimizer.step = lambda *a, **k: seen.append(
        torch.cat([p.grad.reshape(-1).clone() for g in trainer.engine.basic_optimizer.param_groups for p in g["params"]])
    ) or original(*a, **k)
    loss = trainer._train_step()
    assert loss == pytest.approx(float(want_loss), rel=1e-5)
    assert torch.allclose(seen[0], want, rtol=1e-4, atol=1e-7)
