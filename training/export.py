"""Final weights: consolidated from the engine's checkpoint into one safetensors file with the
model config beside it, and loaded back as a `Transformer`.

Where the consolidated weights come from depends on how they were trained:
- ZeRO 1-3: DeepSpeed's `zero_to_fp32` reads the fp32 master weights of every rank's partition
  from the checkpoint (so a bf16 run exports its fp32 masters, not bf16-rounded copies);
- ZeRO 0: the engine's module, which holds the whole model on every rank;
- pipeline parallelism: the per-layer files of the checkpoint, mapped to `Transformer` names.
A tied output head is stored once (safetensors refuses shared tensors) and re-tied on load.
"""
from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import asdict

import torch

from training.model import ModelConfig, Transformer

WEIGHTS = "model.safetensors"
CONFIG = "model_config.json"
_LAYER_FILE = re.compile(r"layer_(\d+)-model_states\.pt$")


def consolidated_state(engine, ckpt_dir: str, tag: str, cfg: ModelConfig, zero_stage: int, pipeline: bool) -> dict[str, torch.Tensor]:
    """The whole model's weights under `Transformer` names (call on one rank, after the save)."""
    if pipeline:
        from training.pipe import state_to_transformer

        layers = {}
        for path in glob.glob(os.path.join(ckpt_dir, tag, "layer_*-model_states.pt")):
            layers[int(_LAYER_FILE.search(path).group(1))] = torch.load(path, map_location="cpu", weights_only=True)
        return state_to_transformer(layers, cfg)
    if zero_stage == 0:
        return {k: v.detach().cpu() for k, v in engine.module.state_dict().items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(ckpt_dir, tag)
    if cfg.tie_embeddings:  # the shared tensor appears once; a wrapper's prefix (backbone.) is kept
        for name in [k for k in state if k.endswith("embed.weight")]:
            state[name[: -len("embed.weight")] + "head.weight"] = state[name]
    return state


def save_model(folder: str, state: dict[str, torch.Tensor], cfg: ModelConfig, extra_config: dict | None = None) -> str:
    """model.safetensors (fp32) + model_config.json; returns the weights path."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()
               if not (cfg.tie_embeddings and k == "head.weight")}
    path = os.path.join(folder, WEIGHTS)
    save_file(tensors, path, metadata={"format": "pt"})
    with open(os.path.join(folder, CONFIG), "w", encoding="utf-8") as f:
        json.dump({**asdict(cfg), **(extra_config or {})}, f, indent=2)
    return path


def read_config(folder: str) -> ModelConfig:
    """The model config of a weights folder; an unreadable one is a one-line TrainingInputError."""
    from training.stage import TrainingInputError

    path = os.path.join(folder, CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        known = set(ModelConfig.__dataclass_fields__)
        return ModelConfig(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise TrainingInputError(f"{path}: not a usable model config ({type(err).__name__}: {err})") from err


def read_weights(folder: str) -> dict[str, torch.Tensor]:
    """The tensors of `folder`/model.safetensors (no pickle); a damaged file is a one-line error."""
    from safetensors.torch import load_file

    from training.stage import TrainingInputError

    path = os.path.join(folder, WEIGHTS)
    try:
        return load_file(path)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise TrainingInputError(f"{path}: not a readable safetensors file ({err})") from err


def load_model(folder: str) -> Transformer:
    """A `Transformer` with the weights of `folder` (safetensors only: no pickle is executed)."""
    cfg = read_config(folder)
    model = Transformer(cfg)
    state = read_weights(folder)
    from training.stage import TrainingInputError

    if "value.weight" in state:
        raise TrainingInputError(f"{folder} holds a reward model (a scalar head, not a language model's); "
                                 "score responses with `llmpipe reward score --model` instead")
    if cfg.tie_embeddings and "embed.weight" in state:
        state["head.weight"] = state["embed.weight"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:  # weights of another shape or naming than model_config.json says
        detail = " ".join(str(err).split())[:300]
        raise TrainingInputError(f"{folder}: the weights do not fit its model_config.json ({detail})") from None
    return model
