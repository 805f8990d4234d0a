"""Where an RL step's time goes: `llmpipe rl` run as given, with timers around the stage's rollout
(training/rl_stage.py `RLRecipe.rollout`, and `sample_groups` inside it) and its loss function
(`RLRecipe.loss_fn`: the policy's and the reference's forward passes and the exact KL); the rest of
the training time is the backward pass, the optimizer step and the trainer's bookkeeping
(docs/alignment.md, "Where a step's time goes").

    OMP_NUM_THREADS=2 python bench/rl_step_profile.py rl --config configs/pipeline.yaml --base runs/demo/06-sft/final \\
        --output /tmp/rl_profile --set rl.max_steps=60 --set rl.save_every=60 --set rl.best_of=0 \\
        --set rl.forgetting_samples=0 --set rl.kl_heldout_samples=0 --set rl.eval_generate=0
"""
from __future__ import annotations

import atexit
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import training.rl_stage as rl_stage  # noqa: E402
from pipelines.cli import main  # noqa: E402

SPENT: collections.Counter = collections.Counter()


def timed(name: str, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[name] += time.perf_counter() - start
    return wrapper


if __name__ == "__main__":
    rl_stage.sample_groups = timed("sampling (sample_groups)", rl_stage.sample_groups)
    rl_stage.RLRecipe.rollout = timed("rollout (sampling, rewards, padding)", rl_stage.RLRecipe.rollout)
    rl_stage.RLRecipe.loss_fn = timed("loss_fn (forward passes, exact KL)", rl_stage.RLRecipe.loss_fn)
    atexit.register(lambda: print("; ".join(f"{k} {v:.1f} s" for k, v in SPENT.items())))
    sys.exit(main(sys.argv[1:]))
