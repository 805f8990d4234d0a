"""Hugging Face layout of a trained model, so it carries into the tools people already use.

    <model folder>  (model.safetensors + model_config.json + tokenizer files [+ chat_template.json])
        ─► hf/  config.json, generation_config.json, model.safetensors,
                tokenizer.json, tokenizer_config.json (+ the chat template as Jinja), special_tokens_map.json

A chat model (one with chat_template.json) stops at its end of turn: `eos_token_id` is
[<|end|>, <|endoftext|>] in config.json and generation_config.json and the tokenizer's eos token
is <|end|>, so transformers' `generate` answers as `llmpipe generate --chat` does. Its Jinja
template gives the training ids: a whole conversation ends with <|endoftext|> (where a reward
model reads its score), `add_generation_prompt=True` ends with <|assistant|>.

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


def stop_ids(specials: dict[str, int], chat: bool) -> list[int]:
    """The ids generation stops at: a chat model's end of turn (<|end|>, where `llmpipe generate
    --chat` stops) and end-of-text; end-of-text alone for a plain language model. <|endoftext|> is
    never a training target after <|end|>, so a chat model that is not stopped at <|end|> writes
    turn after turn."""
    return [specials["<|end|>"], specials["<|endoftext|>"]] if chat else [specials["<|endoftext|>"]]


def hf_config(cfg: ModelConfig, specials: dict[str, int], reward_head: bool = False, chat: bool = False) -> dict:
    """config.json for transformers (both the `rope_theta` key of transformers 4 and the
    `rope_parameters` of 5, so either reads it). A chat model lists its stop ids as
    `eos_token_id`, as chat models on the Hub do."""
    mistral = cfg.sliding_window is not None
    arch = "Mistral" if mistral else "Llama"
    stops = stop_ids(specials, chat and not reward_head)
    config = {
        "architectures": [f"{arch}For{'SequenceClassification' if reward_head else 'CausalLM'}"],
        "model_type": arch.lower(), "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model,
        "intermediate_size": cfg.ffn_hidden, "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "tie_word_embeddings": cfg.tie_embeddings and not reward_head, "attention_bias": False, "mlp_bias": False,
        "initializer_range": cfg.init_std, "torch_dtype": "float32", "use_cache": True,
        "bos_token_id": None, "eos_token_id": stops if len(stops) > 1 else stops[0], "pad_token_id": specials["<|pad|>"],
    }
    if mistral:
        config["sliding_window"] = cfg.sliding_window
    if reward_head:
        config.update(num_labels=1, id2label={"0": "reward"}, label2id={"reward": 0})
    return config


def chat_jinja(model_dir: str, tokenizer) -> Optional[str]:
    """The Jinja chat template of a model tuned on llmpipe's template (its chat_template.json),
    rebuilt from the template code rather than copied, so a folder written before a fix exports
    the current, tested template; None for a model with no chat template."""
    from llmdata.chat import ChatTemplate

    path = os.path.join(model_dir, "chat_template.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            fmt = json.load(f).get("format")
    except (OSError, ValueError, AttributeError) as err:
        raise TrainingInputError(f"export: {path} is not a readable chat template ({err})") from None
    if fmt != "llmpipe-chat-v1":
        raise TrainingInputError(f"export: {path} has format {fmt!r}, not llmpipe-chat-v1")
    return ChatTemplate(tokenizer).jinja()


def tokenizer_files(model_dir: str, out_dir: str, tokenizer, max_len: int, chat_template: Optional[str],
                    reward_head: bool) -> None:
    """tokenizer.json as trained, and the configs that make it an `AutoTokenizer`; the chat
    template (when the model was fine-tuned on one) goes in as Jinja for `apply_chat_template`.
    A chat language model's eos token is its end of turn (<|end|>), as on chat models on the
    Hub, so tools that stop at the tokenizer's eos stop where llmpipe does; a reward model's is
    <|endoftext|>, the token its score is read at."""
    from llmdata.tokenizer_io import write_hf_tokenizer_config

    shutil.copy(os.path.join(model_dir, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))
    eos = "<|end|>" if chat_template is not None and not reward_head else "<|endoftext|>"
    write_hf_tokenizer_config(out_dir, tokenizer.special_ids, eos, max_len, chat_template)


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
    tokenizer = BPETokenizer.load(model_dir)
    specials = tokenizer.special_ids
    template = chat_jinja(model_dir, tokenizer)
    chat = template is not None
    weights = read_weights(model_dir)
    os.makedirs(out_dir, exist_ok=True)
    state = hf_state(weights, cfg, reward_head)
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(cfg, specials, reward_head, chat), f, indent=2)
    if not reward_head:
        with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump({"eos_token_id": stop_ids(specials, chat), "pad_token_id": specials["<|pad|>"],
                       "bos_token_id": None}, f, indent=2)
    tokenizer_files(model_dir, out_dir, tokenizer, cfg.max_seq_len, template, reward_head)
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
