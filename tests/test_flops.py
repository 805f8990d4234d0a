"""MFU's two inputs: FLOPs per token (LoRA's frozen weights need no weight gradient) and the
datasheet peak of the device, matched by its exact model name."""
import pytest

from training.lora import apply_lora, lora_flops_per_token, train_token_rows
from training.metrics import gpu_peak_tflops
from training.model import ModelConfig, Transformer

TARGETS = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]


@pytest.mark.parametrize("tied", [True, False])
def test_lora_counts_4_flops_per_frozen_weight_and_6_per_adapter_weight(tied):
    cfg = ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, ffn_multiple_of=16,
                      tie_embeddings=tied)
    model = Transformer(cfg)
    blocks = cfg.n_params(embeddings=False) - cfg.d_model  # everything but the final norm's gain (tested below)
    assert cfg.flops_per_token(64) == 6 * (cfg.n_params(embeddings=False) + cfg.vocab_size * cfg.d_model) + 12 * 2 * 4 * 8 * 64
    apply_lora(model, TARGETS, rank=4, alpha=8, dropout=0.0)
    adapters = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    linear = sum(m.weight.numel() for n, m in model.named_modules() if n.endswith(tuple(f".{t}.base" for t in TARGETS)))
    norms = blocks - linear  # RMSNorm gains: counted at 6 as in the formula (no matmul)
    attention = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim * 64
    head = cfg.vocab_size * cfg.d_model
    assert lora_flops_per_token(model, 64) == 4 * (linear + head) + 6 * (adapters + norms + cfg.d_model) + attention
    train_token_rows(model, [94, 95])  # the head now computes its whole weight gradient: 6 per head weight
    assert lora_flops_per_token(model, 64) == 4 * linear + 6 * (head + adapters + norms + cfg.d_model) + attention


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA H200 NVL", 835.0), ("NVIDIA GH200 480GB", 989.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100-PCIE-40GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0),
    ("NVIDIA L4", 121.0), ("NVIDIA L40", 181.0), ("NVIDIA L40S", 362.0), ("NVIDIA A10", 125.0),
    ("Tesla V100-SXM2-16GB", 125.0), ("Tesla V100-PCIE-32GB", 112.0),
])
def test_peak_flops_by_exact_model_and_form_factor(name, tflops):
    assert gpu_peak_tflops(name)[0] == tflops


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA GeForce RTX 4090", "NVIDIA L4000", "Tesla V100S-PCIE-32GB", ""])
def test_devices_without_a_known_datasheet_peak_are_unknown(name):
    assert gpu_peak_tflops(name) is None
