"""The DeepSpeed engine from the training section: it really initializes on CPU (gloo)."""
import os

import pytest
import torch
from pydantic import ValidationError
from torch.utils.checkpoint import checkpoint

from training.engine import build_engine, deepspeed_config, lr_factor, param_groups
from training.model import ModelConfig, Transformer
from training.options import DPOSection, LoraSection, PretrainSection, RewardSection, SFTSection, TrainSection


def tiny_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, ffn_multiple_of=16))


def test_pipeline_parallelism_with_zero_2_or_3_is_refused():
    with pytest.raises(ValidationError, match="pipeline parallelism needs ZeRO stage 0 or 1"):
        PretrainSection(pipeline_stages=2, zero_stage=2)
    PretrainSection(pipeline_stages=2, zero_stage=1)


@pytest.mark.parametrize("section", [SFTSection, LoraSection, RewardSection, DPOSection])
def test_pipeline_parallelism_is_refused_where_the_stage_cannot_build_a_pipeline(section):
    """Only pretraining builds its model as a PipelineModule; the alignment stages would have
    handed a plain model to DeepSpeed's pipeline engine."""
    with pytest.raises(ValidationError, match="for pretraining only"):
        section(pipeline_stages=2, zero_stage=1)
    section(pipeline_stages=1)


def test_other_incompatible_settings_are_refused():
    with pytest.raises(ValidationError, match="offload_optimizer needs"):
        TrainSection(offload_optimizer=True, zero_stage=0)


def test_config_and_parameter_groups():
    section = TrainSection(micro_batch=4, grad_accum=3, zero_stage=2, offload_optimizer=True)
    cfg = deepspeed_config(section, bf16=False)
    assert cfg["train_micro_batch_size_per_gpu"] == 4 and cfg["gradient_accumulation_steps"] == 3
    assert cfg["zero_optimization"] == {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": True}}
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    total = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert total == model.cfg.n_params()  # tied embedding counted once


def test_warmup_then_cosine_to_min_lr():
    s = TrainSection(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_factor(0, s) == pytest.approx(0.1) and lr_factor(9, s) == pytest.approx(1.0)
    assert lr_factor(60, s) == pytest.approx(0.55)  # halfway through the cosine
    assert lr_factor(110, s) == pytest.approx(0.1) and lr_factor(500, s) == pytest.approx(0.1)


def _losses(stage: int, checkpoint_activations: bool = False, **options) -> list[float]:
    return _train(stage, checkpoint_activations, **options)[0]


def _train(stage: int, checkpoint_activations: bool = False, **options):
    """Four steps of the tiny model on one CPU rank: (losses, engine)."""
    model = tiny_model()
    model.checkpoint_activations = checkpoint_activations
    engine, config = build_engine(model, TrainSection(micro_batch=2, zero_stage=stage, lr=3e-3, warmup_steps=0,
                                                      max_steps=10, **options))
    assert config["bf16"]["enabled"] is (options.get("precision") == "bf16")  # auto: fp32 on the CPU accelerator
    data = torch.arange(32).repeat(2, 2)[:, :33] % 97
    losses = []
    for _ in range(4):
        loss = engine(data[:, :-1], labels=data[:, 1:])["loss"]
        engine.backward(loss)
        engine.step()
        losses.append(float(loss))
    return losses, engine


def test_zero_stages_give_the_same_losses_on_one_cpu_rank():
    reference = _losses(0)
    assert reference[-1] < reference[0]
    for stage in (1, 2, 3):
        assert _losses(stage) == pytest.approx(reference, rel=1e-4)


def test_optimizer_offload_trains_like_the_optimizer_on_the_device():
    """ZeRO-Offload: the optimizer state lives in CPU memory and DeepSpeedCPUAdam (a C++ op that
    DeepSpeed compiles on first use) steps it; the losses are those of AdamW on the device."""
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    offloaded, engine = _train(2, offload_optimizer=True)
    assert isinstance(engine.basic_optimizer, DeepSpeedCPUAdam)
    assert offloaded == pytest.approx(_losses(2), rel=1e-4)


@pytest.mark.parametrize("stage", [0, 2])
def test_bf16_trains_in_bf16_with_fp32_master_weights_close_to_fp32(stage):
    """`precision: bf16`: the module computes in bf16, the optimizer keeps fp32 master weights, and
    the losses follow fp32's within bf16's precision."""
    bf16, engine = _train(stage, precision="bf16")
    assert next(engine.module.parameters()).dtype == torch.bfloat16
    master = [t for group in engine.optimizer.optimizer.param_groups for t in group["params"]]  # what AdamW steps
    assert master and all(t.dtype == torch.float32 for t in master)
    assert bf16 == pytest.approx(_losses(stage), rel=2e-2) and bf16[-1] < bf16[0]


def test_activation_checkpointing_trains_like_keeping_the_activations(monkeypatch):
    """Recomputing each block in the backward pass changes memory, not the arithmetic."""
    import training.model as model_module

    calls = []
    monkeypatch.setattr(model_module, "checkpoint", lambda *a, **k: calls.append(1) or checkpoint(*a, **k))
    assert _losses(1, checkpoint_activations=True) == pytest.approx(_losses(1), rel=1e-6)
    assert len(calls) == 4 * 2  # every block of every step


def test_compiled_blocks_and_loss_train_like_eager(monkeypatch):
    """`compile: true` (each block and the cross-entropy through torch.compile; inductor's C++
    backend on this CPU) gives the eager losses."""
    import training.model as model_module

    monkeypatch.setattr(model_module, "_cross_entropy", model_module._cross_entropy_sum)  # restored after
    eager = _losses(1)
    compiled = _losses(1, compile=True)
    assert model_module._cross_entropy is not model_module._cross_entropy_sum
    assert compiled == pytest.approx(eager, rel=1e-4)


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA A100-SXM4-40GB", 312.0),
                                        ("Some Future GPU", 0.0)])
def test_mfu_peak_of_a_gpu_comes_from_its_name(monkeypatch, name, peak):
    """On a GPU the MFU denominator is the datasheet peak looked up by the device's name (an
    unknown one asks for `peak_tflops` in the config); a configured figure always wins."""
    import deepspeed.accelerator

    from training.metrics import peak_tflops

    class FakeCuda:
        def device_name(self):
            return "cuda"

    monkeypatch.setattr(deepspeed.accelerator, "get_accelerator", lambda: FakeCuda())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
    value, source = peak_tflops(None)
    assert value == peak
    assert (name in source) if peak else ("set peak_tflops" in source)
    assert peak_tflops(500.0) == (500.0, "config peak_tflops")


def test_deepspeed_init_compiles_no_inference_only_op():
    """DeepSpeed's shared-memory all-reduce op serves only its inference all-reduce; building it
    costs a gcc run (~30 s) in every fresh environment, so the trainer's init skips it."""
    import subprocess
    import sys

    code = ("from training.engine import setup_distributed\nsetup_distributed()\n"
            "import deepspeed.comm.comm as c\nprint('SHM', c.cdb.shm_comm_op)")
    alone = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=alone)
    assert "SHM None" in done.stdout, done.stdout + done.stderr
    assert "shm_comm_op built" not in done.stdout + done.stderr
