"""Low-rank adapters (LoRA, Hu et al. 2021) on the model's linear layers, in PEFT's file layout.

A wrapped layer computes base(x) + B(A(dropout(x))) * alpha / rank with the base weight frozen,
A initialised like a linear layer and B at zero, so training starts from the base model exactly.
Only A and B require gradients, so the optimizer (param_groups skips frozen tensors) never holds
the base weights. `merge_lora` folds B·A·scale into the base weights and unwraps the layers.

Tokens the base model never learned (the chat template's role tokens, reserved but unseen in
pretraining) cannot be learned through frozen embeddings: `train_tokens` makes just their rows
trainable (`TokenRows`, PEFT's "trainable tokens"), in the input embedding and in the output head
(one shared copy when the two are tied).

Saved as PEFT expects (`adapter_config.json`, `adapter_model.safetensors`, with
`trainable_token_indices` for the token rows) with the Hugging Face Llama module names of the
exported model (training/hf_export.py), so PEFT can load the adapter onto the export; the q/k rows
follow the export's rotary layout.
"""
from __future__ import annotations

import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling


class TokenRows(nn.Module):
    """An embedding or output head whose weight is frozen except for the rows of `ids`, which
    come from `rows` (a parameter; pass the same one to a tied embedding and head)."""

    def __init__(self, base: nn.Module, ids: list[int], rows: nn.Parameter):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.register_buffer("ids", torch.tensor(ids, dtype=torch.long), persistent=False)
        self.rows = rows

    def weight(self) -> torch.Tensor:
        return self.base.weight.index_copy(0, self.ids.to(self.base.weight.device), self.rows.to(self.base.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.base, nn.Embedding):
            return F.embedding(x, self.weight())
        return F.linear(x, self.weight())


def train_token_rows(model: nn.Module, ids: list[int]) -> None:
    """Make the embedding rows (and output-head rows) of `ids` trainable, the rest frozen."""
    if not ids:
        return
    embed_rows = nn.Parameter(model.embed.weight[ids].detach().clone())
    tied = model.head.weight is model.embed.weight
    head_rows = embed_rows if tied else nn.Parameter(model.head.weight[ids].detach().clone())
    model.embed = TokenRows(model.embed, ids, embed_rows)
    model.head = TokenRows(model.head, ids, head_rows)


def apply_lora(model: nn.Module, targets: list[str], rank: int, alpha: float, dropout: float) -> list[str]:
    """Freeze every parameter, then wrap each linear layer whose name ends in a target."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and leaf in targets:
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, leaf, LoRALinear(module, rank, alpha, dropout))
            wrapped.append(name)
    if not wrapped:
        raise ValueError(f"no linear layer matches the LoRA targets {targets}")
    return wrapped


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter (and trained token rows) into its base weight and put the plain layers back."""
    for attr in ("embed", "head"):
        module = getattr(model, attr, None)
        if isinstance(module, TokenRows):
            with torch.no_grad():
                module.base.weight[module.ids] = module.rows.to(module.base.weight.dtype)
            setattr(model, attr, module.base)
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            with torch.no_grad():
                module.base.weight += (module.lora_B.weight @ module.lora_A.weight) * module.scaling
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], module.base)
    return model


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, shared tensors counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def lora_flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token of a model wrapped by `apply_lora`: nanoGPT/PaLM's 6N + 12·L·H·Q·T
    (`ModelConfig.flops_per_token`), with each weight matrix counted by what its backward pass
    computes. A frozen matrix costs 4 FLOPs per parameter per token (forward 2, gradient of its
    input 2, no weight gradient), a trainable one 6 (the weight gradient 2 more), so a LoRA model
    is 4·N_frozen + 6·N_adapters + 12·L·H·Q·T. An output head with trained token rows (`TokenRows`)
    computes its whole weight gradient before picking the rows, so it counts 6 like a trainable
    matrix; the attention term keeps its backward (the gradients of queries, keys and values are
    needed whatever is frozen). Embedding lookups are not counted, as in the formula."""
    full = model.cfg.flops_per_token(seq_len)
    head_rows = isinstance(getattr(model, "head", None), TokenRows)
    skip = {id(model.head.base)} if head_rows else set()
    frozen = adapters = 0
    for module in model.modules():
        if isinstance(module, LoRALinear):
            adapters += module.lora_A.weight.numel() + module.lora_B.weight.numel()
        elif isinstance(module, nn.Linear) and id(module) not in skip and not module.weight.requires_grad:
            frozen += module.weight.numel()
    return full - 2 * frozen + 6 * adapters


#: Where PEFT keeps trainable token rows, by our module name.
_TOKEN_KEYS = {"embed": ("embed_tokens", "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta"),
               "head": ("lm_head", "base_model.model.lm_head.token_adapter.trainable_tokens_delta")}


def save_adapter(folder: str, state: dict[str, torch.Tensor], cfg, rank: int, alpha: float, dropout: float,
                 targets: list[str], base_path: str, token_ids: tuple[int, ...] = ()) -> str:
    """adapter_config.json + adapter_model.safetensors in PEFT's layout, HF Llama names."""
    from safetensors.torch import save_file

    from training.hf_export import HF_LINEAR, hf_module, rope_rows_to_hf

    os.makedirs(folder, exist_ok=True)
    tensors = {}
    for name, tensor in state.items():
        if ".lora_A." not in name and ".lora_B." not in name:
            continue
        module, part = name.split(".lora_")  # blocks.0.attn.wq, "A.weight"
        t = tensor.detach().float()
        if part.startswith("B") and module.endswith(("attn.wq", "attn.wk")):
            heads = cfg.n_heads if module.endswith("wq") else cfg.n_kv_heads
            t = rope_rows_to_hf(t, heads, cfg.head_dim)
        tensors[f"base_model.model.{hf_module(module)}.lora_{part}"] = t.contiguous()
    token_indices = {}
    for ours in ("embed",) if cfg.tie_embeddings else ("embed", "head"):  # tied: PEFT ties the head to the embedding
        if token_ids:
            hf_name, key = _TOKEN_KEYS[ours]
            tensors[key] = state[f"{ours}.rows"].detach().float().contiguous()
            token_indices[hf_name] = list(token_ids)
    save_file(tensors, os.path.join(folder, "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha, "lora_dropout": dropout,
              "target_modules": sorted(HF_LINEAR[t] for t in targets), "bias": "none", "fan_in_fan_out": False,
              "inference_mode": True, "base_model_name_or_path": base_path, "modules_to_save": None,
              "trainable_token_indices": token_indices or None}
    with open(os.path.join(folder, "adapter_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    return folder


def load_adapter_into(model: nn.Module, folder: str) -> nn.Module:
    """Wrap `model` as the adapter's config says and load its A/B weights (inverse of save_adapter)."""
    from safetensors.torch import load_file

    from training.hf_export import HF_LINEAR, hf_module, rope_rows_from_hf

    with open(os.path.join(folder, "adapter_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    ours = [k for k, v in HF_LINEAR.items() if v in config["target_modules"]]
    apply_lora(model, ours, config["r"], config["lora_alpha"], 0.0)
    tensors = load_file(os.path.join(folder, "adapter_model.safetensors"))
    token_indices = config.get("trainable_token_indices") or {}
    if token_indices:
        train_token_rows(model, token_indices["embed_tokens"])
        model.embed.rows.data.copy_(tensors[_TOKEN_KEYS["embed"][1]])
        if not model.cfg.tie_embeddings:
            model.head.rows.data.copy_(tensors[_TOKEN_KEYS["head"][1]])
    cfg = model.cfg
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            prefix = f"base_model.model.{hf_module(name)}"
            module.lora_A.weight.data.copy_(tensors[f"{prefix}.lora_A.weight"])
            b = tensors[f"{prefix}.lora_B.weight"]
            if name.endswith(("attn.wq", "attn.wk")):
                b = rope_rows_from_hf(b, cfg.n_heads if name.endswith("wq") else cfg.n_kv_heads, cfg.head_dim)
            module.lora_B.weight.data.copy_(b)
    return model
