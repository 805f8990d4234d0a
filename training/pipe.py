"""The same transformer as a `deepspeed.pipe.PipelineModule`: a list of layer specs that
DeepSpeed spreads over pipeline stages.

    embed (tied) -> block 0 ... block N-1 -> final norm -> head (the embedding again, when tied)

Each layer passes the tuple (hidden, position_ids, doc_ids) to the next, so the block-diagonal
document mask and restarting positions reach every stage. The layers reuse `training.model`'s
modules, so the maths is the one of `Transformer`; `state_to_transformer` maps the pipeline's
per-layer weights back to `Transformer` names for export.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.model import Block, ModelConfig, RMSNorm, document_block_mask, rope_tables, token_loss, use_flex


class EmbedPipe(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.embed.weight, std=cfg.init_std)

    def forward(self, inputs: tuple) -> tuple:
        input_ids, position_ids, doc_ids = inputs
        return self.embed(input_ids), position_ids, doc_ids


def tied_head(module: EmbedPipe, inputs: torch.Tensor) -> torch.Tensor:
    return F.linear(inputs, module.embed.weight)


class BlockPipe(Block):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__(cfg)
        for lin in (self.attn.wq, self.attn.wk, self.attn.wv, self.mlp.w1, self.mlp.w3):
            nn.init.normal_(lin.weight, std=cfg.init_std)
        for lin in (self.attn.wo, self.mlp.w2):  # GPT-2's scaled residual init, as in Transformer
            nn.init.normal_(lin.weight, std=cfg.init_std / (2 * cfg.n_layers) ** 0.5)
        self._rope = None

    def forward(self, inputs: tuple) -> tuple:
        x, position_ids, doc_ids = inputs
        b, t = position_ids.shape
        rope = None
        if self.cfg.position == "rope":
            if self._rope is None or self._rope[0].device != x.device:
                self._rope = rope_tables(self.cfg.head_dim, self.cfg.max_seq_len, self.cfg.rope_theta, x.device)
            rope = self._rope
        index = torch.arange(t, device=x.device).expand(b, t)
        # each pipeline layer builds its own FlexAttention block mask: only tensors cross stages
        block_mask = document_block_mask(doc_ids, self.cfg.sliding_window) if use_flex(self.cfg, doc_ids, None) else None
        return super().forward(x, rope, position_ids, index, doc_ids, None, block_mask), position_ids, doc_ids


class NormPipe(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)

    def forward(self, inputs: tuple) -> torch.Tensor:
        return self.norm(inputs[0])


class HeadPipe(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        nn.init.normal_(self.head.weight, std=cfg.init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class ScaledTokenLoss:
    """The pipeline's loss function: a micro batch's summed next-token loss times `scale`.

    The trainer sets `scale` before each step to grad_accum x data-parallel replicas / the step's
    targets on all replicas, so that after DeepSpeed's division by grad_accum and its mean over
    replicas the gradient is that of the mean over every target of the step (training.loop), and
    to 1 for validation, where it wants the sums."""

    def __init__(self):
        self.scale = 1.0

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total, _ = token_loss(logits, labels)
        return total * self.scale


def build_pipeline(cfg: ModelConfig, num_stages: int, activation_checkpointing: bool = False):
    """The PipelineModule; only pre-norm models (the default) are offered as a pipeline."""
    from deepspeed.pipe import LayerSpec, PipelineModule, TiedLayerSpec

    if cfg.norm != "pre":
        raise ValueError("pipeline parallelism is built for the pre-norm model (norm: pre)")
    # DeepSpeed passes activations between stages with in-place broadcasts that torch, in the backward
    # pass, warns "may lead to silently incorrect behavior" about on every step. The gradients are
    # right: the pipeline's losses equal the plain model's step for step (tests/test_pretrain.py).
    warnings.filterwarnings("ignore", message=r"c10d::broadcast_: an autograd kernel was not registered")
    if cfg.tie_embeddings:
        first = TiedLayerSpec("embed", EmbedPipe, cfg, tied_weight_attr="embed.weight")
        last = TiedLayerSpec("embed", EmbedPipe, cfg, forward_fn=tied_head, tied_weight_attr="embed.weight")
    else:
        first, last = LayerSpec(EmbedPipe, cfg), LayerSpec(HeadPipe, cfg)
    layers = [first, *(LayerSpec(BlockPipe, cfg, i) for i in range(cfg.n_layers)), LayerSpec(NormPipe, cfg), last]
    return PipelineModule(layers=layers, num_stages=num_stages, loss_fn=ScaledTokenLoss(), partition_method="parameters",
                          activation_checkpoint_interval=1 if activation_checkpointing else 0)


def load_transformer_state(module, state: dict[str, torch.Tensor], cfg: ModelConfig) -> None:
    """Set this rank's layers of a PipelineModule from `Transformer` weights (the inverse of
    `state_to_transformer`), to continue pretraining a saved model as a pipeline."""
    with torch.no_grad():
        for tied in module.tied_modules.values():  # the embedding, shared with the head when tied
            tied.embed.weight.copy_(state["embed.weight"])
        for name, layer in module.named_children():
            if not name.isdigit():
                continue
            index = int(name)
            prefix = f"blocks.{index - 1}." if 1 <= index <= cfg.n_layers else ""  # embed, norm and head keep their names
            layer.load_state_dict({key: state[prefix + key] for key in layer.state_dict()}, strict=True)


def state_to_transformer(layer_states: dict[int, dict[str, torch.Tensor]], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Per-layer state dicts (layer index -> its weights) as `Transformer` parameter names."""
    out: dict[str, torch.Tensor] = {}
    last_block = cfg.n_layers
    for layer, state in layer_states.items():
        for name, tensor in state.items():
            if layer == 0:
                out[name] = tensor  # embed.weight
            elif layer <= last_block:
                out[f"blocks.{layer - 1}.{name}"] = tensor
            elif layer == last_block + 1:
                out[name] = tensor  # norm.weight
            elif not cfg.tie_embeddings:
                out[name] = tensor  # head.weight
    if cfg.tie_embeddings:
        out["head.weight"] = out["embed.weight"]
    return out

