"""The DeepSpeed engine, built from the YAML's training section.

Beside the model, never inside it: micro batch, accumulation, ZeRO stage and offload, precision,
clipping, AdamW with decay and no-decay groups, a warmup + cosine schedule, and optionally
torch.compile of the transformer blocks. The accelerator
comes from DeepSpeed (`get_accelerator()`), never a hard-coded "cuda"; on a machine without a GPU
DeepSpeed's CPU accelerator runs it with the gloo backend, in fp32.
"""
from __future__ import annotations

import math
import os
import socket

import torch

from training.model import Block, compile_token_loss
from training.options import TrainSection


def setup_distributed() -> None:
    """One-process defaults (rank 0 of 1) when no launcher set them, then DeepSpeed's init.

    Without a GPU, DeepSpeed's CPU accelerator is selected, which talks gloo.
    """
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "MASTER_PORT" not in os.environ and "WORLD_SIZE" not in os.environ:  # alone: any free port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        os.environ.setdefault(key, value)
    import deepspeed
    from deepspeed.accelerator import get_accelerator
    from deepspeed.utils import logger

    # DeepSpeed logs its whole config and every checkpoint file at INFO; the trainer reports instead.
    logger.setLevel(os.environ.get("LLMPIPE_DEEPSPEED_LOG", "WARNING"))
    # At init DeepSpeed compiles a shared-memory all-reduce op with gcc (about 30 s in every fresh
    # environment) that only its inference all-reduce uses (deepspeed/comm/torch.py); training's
    # collectives go through torch.distributed (gloo on CPU) with or without it.
    compatible = getattr(deepspeed.ops, "__compatible_ops__", None)
    if isinstance(compatible, dict):
        compatible["deepspeed_shm_comm"] = False
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())


def use_bf16(section: TrainSection) -> bool:
    if section.precision != "auto":
        return section.precision == "bf16"
    from deepspeed.accelerator import get_accelerator

    accel = get_accelerator()
    return accel.device_name() != "cpu" and accel.is_bf16_supported()


def deepspeed_config(section: TrainSection, bf16: bool) -> dict:
    zero: dict = {"stage": section.zero_stage}
    if section.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": section.micro_batch,
        "gradient_accumulation_steps": section.grad_accum,
        "gradient_clipping": section.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,  # the trainer logs; DeepSpeed stays quiet
        "wall_clock_breakdown": False,
    }


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (linear and embedding weights), none on norms and biases."""
    decay, no_decay = [], []
    seen = set()
    for _, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]  # LoRA trains matrices only: no empty group


def lr_factor(step: int, section: TrainSection) -> float:
    """Multiplier of `lr` at a step: linear warmup, then cosine decay to min_lr at max_steps."""
    if step < section.warmup_steps:
        return (step + 1) / section.warmup_steps
    span = max(section.max_steps - section.warmup_steps, 1)
    progress = min((step - section.warmup_steps) / span, 1.0)
    floor = section.min_lr / section.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_engine(model: torch.nn.Module, section: TrainSection):
    """The DeepSpeed engine and the config it was built with."""
    import deepspeed

    setup_distributed()
    if section.compile:  # block by block (as torchtitan does): the packed-batch mask is built outside
        for module in model.modules():
            if isinstance(module, Block):
                module.compile()
        compile_token_loss()
    config = deepspeed_config(section, use_bf16(section))
    if section.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        optimizer = DeepSpeedCPUAdam(param_groups(model, section.weight_decay), lr=section.lr, betas=section.betas)
    else:
        optimizer = torch.optim.AdamW(param_groups(model, section.weight_decay), lr=section.lr, betas=section.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, section))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config)
    return engine, config
