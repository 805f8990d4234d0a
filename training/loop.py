"""The training loop every training stage shares: batches, steps, evaluation, checkpoints, resume.

A stage hands the `Trainer` a model (a `Transformer`, a wrapped one, or a `PipelineModule`), its
train and validation datasets, and a loss function; the trainer builds the DeepSpeed engine from
the YAML section and runs it.

Data order: every rank holds the same seeded `ResumableSampler` over the training set. Each micro
step draws micro_batch x data-parallel ranks indices and rank r takes the r-th slice, so one
optimizer step sees the same global batch whatever the split between ranks and accumulation
(2 ranks x 1 accumulation step == 1 rank x 2 accumulation steps, sample for sample).

Loss averaging: every loss is a mean over the targets (tokens, or pairs) of the whole optimizer
step, however the step is split into micro batches and data-parallel ranks. The step's micro batches
are drawn first, their targets counted (`count_fn`) and all-reduced, and each micro batch then
backpropagates its loss *sum* divided by that global count; DeepSpeed's own division by
gradient_accumulation_steps is switched off and its mean over data-parallel ranks multiplied back.
This is the fix of the gradient-accumulation bug of HF transformers (`num_items_in_batch`, 2024) and
torchtitan (`global_valid_tokens`); docs/training.md shows the numbers.

Checkpoints go through the engine (`save_checkpoint`: weights, optimizer, LR schedule) with the
client state beside them: step, consumed samples, tokens, the sampler's position and the RNG
states, so a resumed run continues with exactly the batches and losses of a run that never stopped.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from training.data import ResumableSampler
from training.engine import build_engine
from training.export import consolidated_state
from training.metrics import MetricsLog, peak_tflops
from training.model import ModelConfig, token_loss
from training.options import TrainSection
from training.stage import StageInterrupted, TrainingDiverged, TrainingInputError

Batch = dict[str, torch.Tensor]
#: (model, batch) -> (sum of the per-target losses, number of targets); the mean is sum / count.
#: A loss of several terms with their own units (the reward model's pairs and language-model tokens)
#: returns 1-D tensors of sums and counts, one entry per term; its value is sum_k sum[k] / count[k].
LossFn = Callable[[Callable, Batch], tuple[torch.Tensor, torch.Tensor]]
#: batch -> the count its LossFn will return, read from the batch alone (before any forward pass)
CountFn = Callable[[Batch], torch.Tensor]
#: beside the checkpoints: how many ranks wrote them (a resume needs the same)
LAYOUT_FILE = "layout.json"


def causal_lm_loss(model: Callable, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy summed over labels != -100, with its token count."""
    logits = model(batch["input_ids"], position_ids=batch.get("position_ids"), doc_ids=batch.get("doc_ids"))["logits"]
    return token_loss(logits, batch["labels"])


def target_count(batch: Batch) -> torch.Tensor:
    """Next-token targets of a batch: its labels != -100 (what `token_loss` counts)."""
    return (batch["labels"] != -100).sum()


def pair_count(batch: Batch) -> torch.Tensor:
    """Preference pairs of a [chosen..., rejected...] batch."""
    return torch.tensor(batch["input_ids"].size(0) // 2)


def elapsed_eta(elapsed_s: float, steps_done: int, steps_left: int) -> str:
    """ "1m05s elapsed, ETA 3m20s" at the run's mean step time so far (evaluation and checkpoints
    included); "ETA ?" before the first step."""
    def clock(seconds: float) -> str:
        m, s = divmod(int(round(seconds)), 60)
        h, m = divmod(m, 60)
        return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"

    eta = clock(elapsed_s / steps_done * steps_left) if steps_done else "?"
    return f"{clock(elapsed_s)} elapsed, ETA {eta}"


def stack(samples: list[Batch]) -> Batch:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def rng_state() -> dict:
    """Every RNG a step can draw from, as plain Python values."""
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
             "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class StopRequest:
    """SIGTERM (a scheduler preempting the job, or its time limit) or SIGUSR1 (Slurm's
    `--signal=USR1@120` warning): the step in progress finishes, a checkpoint is written, and the
    run stops, where a kill would lose everything since the last checkpoint. The ranks agree on
    the step (one tiny all-reduce per step), since a signal reaches them at different moments."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum = 0
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *_exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame) -> None:
        self.signum = signum

    def agreed(self, world: int, device) -> int:
        """The signal to stop on, the same on every rank (0: go on)."""
        if world == 1:
            return self.signum
        import torch.distributed as dist

        flag = torch.tensor([float(self.signum)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


class Trainer:
    def __init__(self, model: torch.nn.Module, section: TrainSection, out: str, train_set: Dataset,
                 val_set: Optional[Dataset], tokens_per_sample: float, flops_per_token: float,
                 loss_fn: LossFn = causal_lm_loss, collate: Callable[[list], Batch] = stack,
                 fingerprint: str = "", log: Callable[[str], None] = print, perplexity: bool = True,
                 count_fn: CountFn = target_count, step_metrics: Optional[Callable[[], dict]] = None,
                 stage_state: Optional[Any] = None):
        """`perplexity`: the loss is a next-token cross-entropy, so exp(loss) means something (not
        for the reward model's or DPO's pairwise losses). `count_fn` gives, from a batch alone, the
        count `loss_fn` will return for it: the step's losses are averaged over that unit.
        `step_metrics`, called on every rank after each optimizer step, returns more values for
        that step's metrics record (RL's rewards and KL), already reduced over the ranks; with it
        every step's record is written, whatever `log_every`.
        `stage_state` (an object with `state_dict()` / `load_state_dict(dict)`, e.g. RL's KL
        controller) is saved in every checkpoint and restored on resume."""
        import torch.distributed as dist

        self.section = section
        self.out = out
        self.train_set, self.val_set = train_set, val_set
        self.loss_fn, self.collate, self.count_fn = loss_fn, collate, count_fn
        self.step_metrics = step_metrics
        self.stage_state = stage_state
        self.perplexity = perplexity
        self.fingerprint = fingerprint
        self.engine, self.ds_config = build_engine(model, section)
        self.pipeline = section.pipeline_stages > 1
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.dp_world = self.engine.dp_world_size
        self.dp_rank = self.engine.grid.get_data_parallel_rank() if self.pipeline else self.rank
        self.log = log if self.rank == 0 else (lambda _msg: None)
        self.sampler = ResumableSampler(len(train_set), seed=section.seed)
        self._order = iter(self.sampler)
        self.global_batch = section.micro_batch * section.grad_accum * self.dp_world
        self.tokens_per_step = round(self.global_batch * tokens_per_sample)
        self.flops_per_token = flops_per_token
        self.ckpt_dir = os.path.join(out, "checkpoints")
        self.step = self.consumed = self.tokens = 0
        self.resumed_from = 0
        # optimizer steps that did not train, over the whole run (kept in the checkpoints), counted
        # from step failed_from (not 0 only after a resume from a checkpoint written without the count)
        self.failed_steps = self.failed_from = 0

    # ---- data ----------------------------------------------------------------------------------
    def _to_device(self, batch: Batch) -> Batch:
        return {k: v.to(self.engine.device) for k, v in batch.items()}

    def _next_micro_batch(self) -> Batch:
        mb = self.section.micro_batch
        indices = [next(self._order) for _ in range(mb * self.dp_world)]
        mine = indices[self.dp_rank * mb : (self.dp_rank + 1) * mb]
        return self._to_device(self.collate([self.train_set[i] for i in mine]))

    @staticmethod
    def _pipe_item(batch: Batch) -> tuple:
        return (batch["input_ids"], batch["position_ids"], batch["doc_ids"]), batch["labels"]

    # ---- steps ---------------------------------------------------------------------------------
    def _count(self, batches: list[Batch]) -> torch.Tensor:
        """`count_fn` summed over this rank's batches (float64, exact below 2^53)."""
        return torch.stack([torch.as_tensor(self.count_fn(b), dtype=torch.float64, device=self.engine.device)
                            for b in batches]).sum(0)

    def _all_ranks(self, local: torch.Tensor) -> torch.Tensor:
        """A per-rank count summed over the data-parallel replicas. Pipeline stages of one replica
        hold the same batches, so the sum over all ranks is divided by their number."""
        local = local.clone()
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(local)
            local /= self.world // self.dp_world
        return local

    def _train_step(self) -> float:
        """One optimizer step; returns its loss, the mean over the step's targets on all ranks."""
        engine = self.engine
        batches = [self._next_micro_batch() for _ in range(self.section.grad_accum)]
        expected = self._count(batches)
        total = self._all_ranks(expected).clamp(min=1)
        if self.pipeline:  # every rank draws the batches, so the sampler state is the same everywhere
            # DeepSpeed divides each micro batch's loss by grad_accum and averages over replicas:
            # loss_fn's sum times this factor gives sum / total after both
            engine.module.loss_fn.scale = float(self.section.grad_accum * self.dp_world / total)
            return float(engine.train_batch(data_iter=iter([self._pipe_item(b) for b in batches])))
        step_loss = torch.zeros((), dtype=torch.float64, device=engine.device)
        counted = []
        for batch in batches:
            sums, count = self.loss_fn(engine, batch)
            loss = (sums / total.to(sums.dtype)).sum()
            # DeepSpeed averages gradients over data-parallel ranks: multiplied back, the step's
            # gradient is that of sum / total; scale_wrt_gas=False: no division by grad_accum
            engine.backward(loss * self.dp_world, scale_wrt_gas=False)
            engine.step()
            step_loss += loss.detach().to(torch.float64)
            counted.append(count.detach().to(torch.float64))
        local = torch.stack(counted).sum(0)
        if not torch.equal(local, expected):
            raise RuntimeError(f"the loss counted {local.tolist()} targets where count_fn said {expected.tolist()}: "
                               "the step's losses would be mis-weighted")
        if self.dp_world > 1:
            import torch.distributed as dist

            dist.all_reduce(step_loss)
        return float(step_loss)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean validation loss (over all targets of all ranks, like the training loss) and
        perplexity over the first eval_batches global batches of the validation split, in file
        order; the last batch wraps round a small split."""
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        mb = self.section.micro_batch
        per_global = mb * self.dp_world
        batches = min(self.section.eval_batches, math.ceil(len(self.val_set) / per_global))
        engine = self.engine
        sums = counts = None
        for b in range(batches):
            start = b * per_global + self.dp_rank * mb
            batch = self._to_device(self.collate([self.val_set[(start + i) % len(self.val_set)] for i in range(mb)]))
            if self.pipeline:
                # with scale 1 the loss function gives the batch's loss sum; eval_batch averages it
                # over the data-parallel replicas, so times their number it is the sum over all
                engine.module.loss_fn.scale = 1.0
                s = engine.eval_batch(iter([self._pipe_item(batch)]), num_micro_batches=1).double() * self.dp_world
                c = self._all_ranks(self._count([batch]))
            else:
                engine.eval()
                s, c = self.loss_fn(engine, batch)
            s, c = s.detach().double().cpu(), c.detach().double().cpu()
            sums, counts = (s, c) if sums is None else (sums + s, counts + c)
        engine.train()
        if self.dp_world > 1 and not self.pipeline:  # the pipeline's sums and counts are already global
            import torch.distributed as dist

            both = torch.cat([sums.reshape(-1), counts.reshape(-1)]).to(engine.device)  # NCCL reduces device tensors only
            dist.all_reduce(both)
            sums, counts = both.cpu().split(sums.numel())
        val_loss = float((sums / counts.clamp(min=1)).sum())
        return {"val_loss": val_loss, **({"val_ppl": math.exp(min(val_loss, 50.0))} if self.perplexity else {})}

    # ---- checkpoints ---------------------------------------------------------------------------
    def save(self) -> str:
        tag = f"step_{self.step:07d}"
        client = {"step": self.step, "consumed_samples": self.consumed, "tokens": self.tokens,
                  "sampler": self.sampler.state_dict(), "rng": rng_state(), "fingerprint": self.fingerprint,
                  "failed_steps": self.failed_steps, "failed_from": self.failed_from}
        if self.stage_state is not None:
            client["stage_state"] = self.stage_state.state_dict()
        self.engine.save_checkpoint(self.ckpt_dir, tag=tag, client_state=client)
        if self.rank == 0:
            with open(os.path.join(self.ckpt_dir, LAYOUT_FILE), "w", encoding="utf-8") as f:
                json.dump(self._layout(), f)
            tags = sorted(d for d in os.listdir(self.ckpt_dir) if d.startswith("step_"))
            for old in tags[: -self.section.keep_checkpoints]:
                shutil.rmtree(os.path.join(self.ckpt_dir, old), ignore_errors=True)
        return tag

    def resume(self) -> bool:
        """Continue from the newest readable checkpoint in the stage folder, if there is one.

        DeepSpeed writes `latest` after a checkpoint's files, so folders newer than it were cut off
        while saving and are never read. One that `latest` names but that cannot be read (a full
        disk, a file lost in a copy) is passed over, with a line saying so, for the one before
        it; every rank must read the same checkpoint. None readable is a one-line error."""
        import torch.distributed as dist

        tags = self._resumable_tags()
        layout_file = os.path.join(self.ckpt_dir, LAYOUT_FILE)
        if tags and os.path.exists(layout_file):
            with open(layout_file, encoding="utf-8") as f:
                saved = json.load(f)
            if saved != self._layout():
                raise TrainingInputError(
                    f"the checkpoints in {self.ckpt_dir} were written by {saved['ranks']} rank(s) "
                    f"({saved['data_parallel']} data-parallel); this run has {self.world} ({self.dp_world}): run with "
                    f"the same number of ranks to resume (ZeRO state and the global batch depend on it), or --force to start over")
        for tag in tags:
            try:
                path, client = self.engine.load_checkpoint(self.ckpt_dir, tag=tag)
                problem = None if path is not None else "nothing loaded"
            except Exception as err:  # noqa: BLE001 - a torn file raises anything from OSError to AssertionError
                problem = ": ".join([type(err).__name__, *str(err).strip().splitlines()[:1]])
            ok = torch.tensor([0.0 if problem else 1.0], device=self.engine.device)
            dist.all_reduce(ok, op=dist.ReduceOp.MIN)
            if ok.item() == 1.0:
                break
            self.log(f"checkpoint {tag} cannot be read ({problem or 'on another rank'}); trying an earlier one")
        else:
            if tags:
                raise TrainingInputError(f"no readable checkpoint in {self.ckpt_dir} (tried {', '.join(tags)}); "
                                         "--force starts over")
            return False
        self.step, self.consumed, self.tokens = client["step"], client["consumed_samples"], client["tokens"]
        self.sampler.load_state_dict(client["sampler"])
        self._order = iter(self.sampler)
        set_rng_state(client["rng"])
        if self.stage_state is not None and "stage_state" in client:
            self.stage_state.load_state_dict(client["stage_state"])
        self.resumed_from = self.step
        self.failed_steps = client.get("failed_steps", 0)
        self.failed_from = client.get("failed_from", 0) if "failed_steps" in client else self.step
        self.log(f"resumed from {path} at step {self.step}")
        return True

    def _layout(self) -> dict:
        return {"ranks": self.world, "data_parallel": self.dp_world}

    def _resumable_tags(self) -> list[str]:
        """The checkpoint named by `latest` and the older ones, newest first."""
        if not os.path.exists(os.path.join(self.ckpt_dir, "latest")):
            return []
        latest = self.latest_tag()
        saved = [d for d in os.listdir(self.ckpt_dir) if d.startswith("step_") and d <= latest]
        return sorted(set(saved) | {latest}, reverse=True)

    def latest_tag(self) -> str:
        with open(os.path.join(self.ckpt_dir, "latest"), encoding="utf-8") as f:
            return f.read().strip()

    # ---- the run -------------------------------------------------------------------------------
    def run(self, name: str, cfg: ModelConfig, until_step: Optional[int] = None,
            progress: bool = True) -> tuple[dict, Optional[dict[str, torch.Tensor]]]:
        """What every training stage does: resume from the latest checkpoint, train, and once
        finished return the whole model's weights, consolidated from the checkpoint, on rank 0.
        The weights are None on the other ranks, and when the run stopped at `until_step` (after
        saying how to resume). Stopped by a signal, it raises StageInterrupted after its checkpoint."""
        self.resume()
        summary = self.fit(until_step, progress=progress)
        if not summary["finished"]:
            where = (f"step {summary['steps']} of {self.section.max_steps} (checkpoint {self.latest_tag()}); "
                     "run the same command again to resume")
            if summary["stopped_by"]:
                signum = summary["stopped_by"]
                raise StageInterrupted(signum, f"{name}: stopped by {signal.Signals(signum).name} at {where}")
            self.log(f"{name}: stopped at {where}")
            return summary, None
        if self.rank != 0:
            return summary, None
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # zero_to_fp32 chatter
            state = consolidated_state(self.engine, self.ckpt_dir, self.latest_tag(), cfg, self.section.zero_stage, self.pipeline)
        return summary, state

    def fit(self, until_step: Optional[int] = None, progress: bool = True) -> dict:
        """Train to max_steps (or stop after `until_step`, checkpointed, for a later resume)."""
        from tqdm import tqdm

        s = self.section
        peak, peak_source = peak_tflops(s.peak_tflops)
        metrics = MetricsLog(self.out, s.tensorboard, self.resumed_from, self.log) if self.rank == 0 else None
        # A bar on a terminal; in a log file (make, CI, a cluster job) a plain line every tenth of the run.
        interactive = progress and sys.stderr.isatty()
        bar = tqdm(total=s.max_steps, initial=self.step, disable=not interactive or self.rank != 0, mininterval=1.0,
                   desc="train", unit="step", dynamic_ncols=True)
        every = max(s.max_steps // 10, 1)
        step_times: list[float] = []
        last_eval: dict = {}
        losses: list[float] = []
        started = time.perf_counter()
        first_step = self.step  # a resumed run's rate counts only its own steps
        stopped_by = 0
        failed_steps = 0  # skipped by the optimizer (non-finite gradients) or with a non-finite loss
        diverged = ""
        with StopRequest() as stop_request:  # SIGTERM / SIGUSR1: checkpoint after this step and stop
            while self.step < s.max_steps:
                lr = self.engine.get_lr()[0]  # the rate this step uses (the scheduler moves on in step())
                t0 = time.perf_counter()
                skipped = self.engine.skipped_steps
                loss = self._train_step()
                dt = time.perf_counter() - t0
                applied = self.engine.skipped_steps == skipped  # not skipped for non-finite gradients (ZeRO)
                failed = not applied or not math.isfinite(loss)
                failed_steps += failed
                self.failed_steps += failed
                extra = self.step_metrics() if self.step_metrics else {}
                self.step += 1
                self.consumed += self.global_batch
                self.tokens += self.tokens_per_step
                step_times.append(dt)
                losses.append(loss)
                tok_s = self.tokens_per_step / dt
                mfu = tok_s * self.flops_per_token / (peak * 1e12 * self.world) if peak else None
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}")
                if progress and not interactive and (self.step % every == 0 or self.step == s.max_steps):
                    self.log(f"step {self.step}/{s.max_steps}: loss {loss:.4f}, lr {lr:.2e}, {tok_s:,.0f} tokens/s, "
                             + elapsed_eta(time.perf_counter() - started, self.step - first_step, s.max_steps - self.step))
                # a stage with per-step metrics (RL) builds its report from every step's record: all written
                if metrics and (self.step_metrics or self.step % s.log_every == 0 or self.step == s.max_steps):
                    norm = self.engine.get_global_grad_norm() if not self.pipeline else None
                    metrics.write({"event": "train", "step": self.step, "loss": loss, "lr": lr, "tokens": self.tokens,
                                   "tokens_per_s": tok_s, "mfu": mfu, "step_s": dt,
                                   "grad_norm": float(norm) if norm is not None else None, **extra})
                if applied and not math.isfinite(loss):
                    diverged = (f"step {self.step}: the loss is {loss} and the optimizer applied the step, so the weights "
                                "are no longer finite")
                elif self.step == s.max_steps and failed_steps == self.step - first_step:
                    diverged = (f"none of the {failed_steps} optimizer steps trained: each had a non-finite loss (last "
                                f"{loss}) or non-finite gradients, which the optimizer skipped")
                if diverged:
                    diverged += "; lower lr or the loss's weights (e.g. kl_coef, beta)"
                    break  # no checkpoint of it: a rerun would resume from it, or take it for a finished run
                if self.step % s.eval_every == 0 or self.step == s.max_steps:
                    last_eval = self.evaluate()
                    if metrics and last_eval:
                        metrics.write({"event": "eval", "step": self.step, **last_eval})
                        (bar.write if interactive else self.log)(
                            f"step {self.step}: val loss {last_eval['val_loss']:.4f}"
                            + (f", ppl {last_eval['val_ppl']:.1f}" if "val_ppl" in last_eval else ""))
                stopped_by = stop_request.agreed(self.world, self.engine.device)
                stop = (until_step is not None and self.step >= until_step) or bool(stopped_by)
                if self.step % s.save_every == 0 or self.step == s.max_steps or stop:
                    self.save()
                if stop:
                    break
        bar.close()
        if metrics:
            metrics.close()
        if diverged:
            raise TrainingDiverged(diverged)
        if self.failed_steps:  # finite weights, but not every step trained: say so rather than end quietly
            self.log(f"warning: {self.failed_steps} of {self.step - self.failed_from} optimizer steps did not train (a "
                     "non-finite loss, or non-finite gradients the optimizer skipped); the report counts them")
        timed = step_times[1:] or step_times  # the first step pays for warm-up
        tok_s = self.tokens_per_step * len(timed) / sum(timed) if timed else 0.0
        return {
            "steps": self.step, "finished": self.step >= s.max_steps, "resumed_from": self.resumed_from,
            "tokens": self.tokens, "consumed_samples": self.consumed, "global_batch": self.global_batch,
            "epochs": self.consumed / max(len(self.train_set), 1),
            "train_loss_last": float(np.mean(losses[-10:])) if losses else None,
            **last_eval, "tokens_per_s": tok_s, "peak_tflops_per_device": peak, "peak_source": peak_source,
            "mfu": tok_s * self.flops_per_token / (peak * 1e12 * self.world) if peak else None,
            "ranks": self.world, "wall_s": time.perf_counter() - started, "stopped_by": stopped_by,
            "failed_steps": self.failed_steps, "failed_from": self.failed_from,
        }
