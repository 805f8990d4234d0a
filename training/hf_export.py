"""Hugging Face layout of a trained model, so it carries into the tools people already use.

    <model folder>  (model.safetensors + model_config.json + tokenizer files [+ chat_template.json])
        ─► hf/  config.json, generation_config.json, model.safetensors,
                tokenizer.json, tokenizer_config.json, special_tokens_map.json

The model is the Llama architecture (pre-norm RMSNorm, SwiGLU, GQA, rotary positions), so it
exports as `LlamaForCausalLM` (`MistralForCausalLM` when it has a sliding window, whose mask HF
computes the same way: a query sees keys less than `window` positions back), and a reward model
as `LlamaForSequenceClassification` with one label, which HF also reads at the last non-padding
token. ALiBi, post-norm and DeepNorm models have no HF Llama equivalent and are refused.

Two layouts differ beneath the names: our rotary embedding turns pairs (2i, 2i+1) of each head,
HF's turns (i, i + head_dim/2). Reordering the output rows of the q and k projections head by head
gives the same attention scores, so logits match (tests/test_export.py holds them to 1e-4).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Callable, Optional

import torch

from training.export import CONFIG, WEIGHTS, read_config, read_weights
from training.model import ModelConfig
from training.stage import TrainingInputError

#: Our linear layers and their names in Hugging Face's Llama layout.
HF_LINEAR = {"wq": "q_proj", "wk": "k_proj", "wv": "v_proj", "wo": "o_proj", "w1": "gate_proj", "w3": "up_proj",
             "w2": "down_proj"}
_NORMS = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm"}


def hf_module(name: str) -> str:
    """`blocks.3.attn.wq` -> `model.layers.3.self_attn.q_proj` (the module path in HF Llama)."""
    parts = name.split(".")
    if parts[0] != "blocks" or len(parts) != 4:
        raise ValueError(f"not a block linear layer: {name}")
    group = "self_attn" if parts[2] == "attn" else "mlp"
    return f"model.layers.{parts[1]}.{group}.{HF_LINEAR[parts[3]]}"


def rope_rows_to_hf(w: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """Reorder a q/k projection's output rows from our rotary pairs (2i, 2i+1) to HF's
    rotate-half pairs (i, i + head_dim/2), head by head; the attention scores are unchanged."""
    per_head = w.reshape(heads, head_dim, -1)
    return torch.cat([per_head[:, 0::2], per_head[:, 1::2]], dim=1).reshape(w.shape)


def rope_rows_from_hf(w: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    per_head = w.reshape(heads, head_dim, -1)
    out = torch.empty_like(per_head)
    out[:, 0::2], out[:, 1::2] = per_head[:, : head_dim // 2], per_head[:, head_dim // 2 :]
    return out.reshape(w.shape)


def check_exportable(cfg: ModelConfig) -> None:
    """Raise a one-line TrainingInputError for a model HF's Llama cannot express."""
    if cfg.position != "rope":
        raise TrainingInputError(f"export: position {cfg.position!r} has no Hugging Face Llama equivalent (rope only)")
    if cfg.norm != "pre":
        raise TrainingInputError(f"export: norm {cfg.norm!r} has no Hugging Face Llama equivalent (pre-norm only)")


def hf_state(state: dict[str, torch.Tensor], cfg: ModelConfig, reward_head: bool = False) -> dict[str, torch.Tensor]:
    """Our weights under HF Llama names; q/k rows in HF's rotary order."""
    out: dict[str, torch.Tensor] = {"model.embed_tokens.weight": state["embed.weight"], "model.norm.weight": state["norm.weight"]}
    for name, tensor in state.items():
        parts = name.split(".")
        if parts[0] != "blocks":
            continue
        layer, module = parts[1], parts[2]
        if module in _NORMS:
            out[f"model.layers.{layer}.{_NORMS[module]}.weight"] = tensor
            continue
        linear = ".".join(parts[:4])
        if parts[3] in ("wq", "wk"):
            heads = cfg.n_heads if parts[3] == "wq" else cfg.n_kv_heads
            tensor = rope_rows_to_hf(tensor, heads, cfg.head_dim)
        out[f"{hf_module(linear)}.weight"] = tensor
    if reward_head:
        out["score.weight"] = state["value.weight"]
    elif not cfg.tie_embeddings:
        out["lm_head.weight"] = state["head.weight"]
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


def hf_config(cfg: ModelConfig, specials: dict[str, int], reward_head: bool = False) -> dict:
    """config.json for transformers (both the `rope_theta` key of transformers 4 and the
    `rope_parameters` of 5, so either reads it)."""
    mistral = cfg.sliding_window is not None
    arch = "Mistral" if mistral else "Llama"
    config = {
        "architectures": [f"{arch}For{'SequenceClassification' if reward_head else 'CausalLM'}"],
        "model_type": arch.lower(), "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "tie_word_embeddings": cfg.tie_embeddings and not reward_head, "attention_bias": False, "mlp_bias": False,
        "initializer_range": cfg.init_std, "torch_dtype": "float32", "use_cache": True,
        "bos_token_id": None, "eos_token_id": specials["<|endoftext|>"], "pad_token_id": specials["<|pad|>"],
    }
    if mistral:
        config["sliding_window"] = cfg.sliding_window
    if reward_head:
        config.update(num_labels=1, id2label={"0": "reward"}, label2id={"reward": 0})
    return config


def tokenizer_files(model_dir: str, out_dir: str, specials: dict[str, int], max_len: int) -> None:
    """tokenizer.json as trained, and the configs that make it an `AutoTokenizer`; the chat
    template (when the model was fine-tuned on one) goes in as Jinja for `apply_chat_template`."""
    shutil.copy(os.path.join(model_dir, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))
    roles = [t for t in specials if t not in ("<|endoftext|>", "<|pad|>")]
    tok_config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>", "pad_token": "<|pad|>",
                  "bos_token": None, "unk_token": None, "model_max_length": max_len, "clean_up_tokenization_spaces": False,
                  "additional_special_tokens": roles, "add_bos_token": False, "add_eos_token": False,
                  "added_tokens_decoder": {str(i): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                                    "normalized": False, "single_word": False} for t, i in specials.items()}}
    template = os.path.join(model_dir, "chat_template.json")
    if os.path.exists(template):
        with open(template, encoding="utf-8") as f:
            tok_config["chat_template"] = json.load(f)["jinja"]
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_config, f, indent=2)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"eos_token": "<|endoftext|>", "pad_token": "<|pad|>", "additional_special_tokens": roles}, f, indent=2)


def export_hf(model_dir: str, out_dir: str) -> str:
    """Write the HF layout of the model in `model_dir` (a stage's final/ or merged/) to `out_dir`."""
    from safetensors.torch import save_file

    from llmdata.tokenizer_io import BPETokenizer

    for name in (WEIGHTS, CONFIG, "tokenizer.json", "llmpipe_tokenizer.json"):
        if not os.path.exists(os.path.join(model_dir, name)):
            raise TrainingInputError(f"export: {model_dir} has no {name} (expected a stage's final/ or merged/ folder)")
    cfg = read_config(model_dir)
    check_exportable(cfg)
    with open(os.path.join(model_dir, CONFIG), encoding="utf-8") as f:
        reward_head = bool(json.load(f).get("reward_head"))
    specials = BPETokenizer.load(model_dir).special_ids
    weights = read_weights(model_dir)
    os.makedirs(out_dir, exist_ok=True)
    state = hf_state(weights, cfg, reward_head)
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(cfg, specials, reward_head), f, indent=2)
    if not reward_head:
        with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"eos_token_id": specials["<|endoftext|>"], "pad_token_id": specials["<|pad|>"]}, f, indent=2)
    tokenizer_files(model_dir, out_dir, specials, cfg.max_seq_len)
    return out_dir


def export_stage_model(final_dir: str, out_dir: str, log: Callable[[str], None]) -> Optional[str]:
    """A training stage's hf/ folder; a model HF cannot express is said in the log, not an error
    (the stage's own weights are complete without it)."""
    try:
        check_exportable(read_config(final_dir))
    except TrainingInputError as err:
        log(f"{err}; no hf/ folder written")
        return None
    return export_hf(final_dir, out_dir)
