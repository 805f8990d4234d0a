"""The decoder-only transformer, in one file to read top to bottom.

Token embedding (optionally tied to the output head) -> N blocks -> final RMSNorm -> head.
A block: grouped-query attention with rotary positions (or ALiBi), then a SwiGLU MLP, each in a
residual branch, pre-norm by default (post-norm and DeepNorm as options). Attention runs through
`torch.nn.functional.scaled_dot_product_attention`, which picks FlashAttention kernels on GPUs
when the mask is plain causal. Packed sequences keep attention inside each document: `doc_ids`
gives a block-diagonal causal mask, and `position_ids` restart at each document. A dense mask
rules out the FlashAttention kernels, so on a GPU packed batches go through FlexAttention instead
(`attention: auto`): a compiled kernel that skips the blocks no document reaches, same result.

The model knows nothing of parallelism or of saving checkpoints; those live beside it (torchtitan's rule).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, Union, get_args, get_type_hints

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


#: ModelConfig fields that count something: whole numbers >= 1
_COUNTS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_multiple_of", "max_seq_len")


@dataclass
class ModelConfig:
    vocab_size: int = 8192
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 8  # 1 = multi-query, n_heads = multi-head, between = grouped-query
    ffn_multiple_of: int = 64  # SwiGLU hidden size: 8/3 d_model rounded up to this multiple
    max_seq_len: int = 2048
    position: Literal["rope", "alibi"] = "rope"
    rope_theta: float = 10000.0
    norm: Literal["pre", "post", "deepnorm"] = "pre"
    sliding_window: Optional[int] = None  # attend to at most this many previous tokens
    tie_embeddings: bool = True
    # packed batches: "auto" = FlexAttention with a block mask on CUDA, SDPA with a dense boolean
    # mask elsewhere (FlexAttention has no CPU backward); "sdpa" = the dense mask everywhere
    attention: Literal["auto", "sdpa"] = "auto"
    norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        """Raises ValueError (one line) for a value of the wrong type or out of range (a hand-edited
        model_config.json: "d_model": 128.0, "n_layers": "4", "max_seq_len": 0) or shapes that do not fit."""
        for name in _COUNTS + (("sliding_window",) if self.sliding_window is not None else ()):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1 (got {value!r})")
        for name in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0 (got {value!r})")
        if type(self.tie_embeddings) is not bool:
            raise ValueError(f"tie_embeddings must be true or false (got {self.tie_embeddings!r})")
        hints = get_type_hints(ModelConfig)
        for name in ("position", "norm", "attention"):  # a typo must not train a different model
            allowed = get_args(hints[name])
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.position == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("rotary positions need an even head dimension")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_hidden(self) -> int:
        hidden = int(8 * self.d_model / 3)
        return self.ffn_multiple_of * math.ceil(hidden / self.ffn_multiple_of)

    def n_params(self, embeddings: bool = True) -> int:
        """Parameters, computed from the shapes (tested equal to the module's count)."""
        d, kv = self.d_model, self.n_kv_heads * self.head_dim
        attn = d * d + 2 * d * kv + d * d
        mlp = 3 * d * self.ffn_hidden
        per_layer = attn + mlp + 2 * d
        total = self.n_layers * per_layer + d  # + final norm
        if embeddings:
            total += self.vocab_size * d * (1 if self.tie_embeddings else 2)
        else:
            total += 0 if self.tie_embeddings else self.vocab_size * d
        return total

    def flops_per_token(self, seq_len: int, lm_head: bool = True) -> float:
        """Training FLOPs per token, nanoGPT/PaLM's formula: 6N + 12·L·H·Q·T, with N the
        non-embedding parameters plus the output head, L layers, H heads, Q head dim, T context.
        A reward model never computes the vocabulary logits (`lm_head=False`)."""
        n = self.n_params(embeddings=False) + (self.vocab_size * self.d_model if lm_head else 0)
        return 6 * n + 12 * self.n_layers * self.n_heads * self.head_dim * seq_len


#: The packaged presets (tiny, 125m, 350m, 1b), found beside this file whatever the working directory.
PRESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models.yaml")


def load_preset(name: str, path: Optional[str] = None, **overrides) -> ModelConfig:
    """A named preset from `path` (default: the packaged `training/models.yaml`; read with
    safe_load), with overrides. Raises ValueError for an unknown name."""
    path = path or PRESETS
    import yaml

    with open(path, encoding="utf-8") as f:
        presets = yaml.safe_load(f)
    if name not in presets:
        raise ValueError(f"unknown model preset {name!r} (known: {', '.join(presets)})")
    return ModelConfig(**{**presets[name], **overrides})


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rope_tables(head_dim: int, max_len: int, theta: float, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position x frequency, shape (max_len, head_dim / 2)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]) of each head by position x frequency i.

    x: (batch, heads, seq, head_dim); positions: (batch, seq).
    """
    c = cos[positions].unsqueeze(1)  # (batch, 1, seq, head_dim/2)
    s = sin[positions].unsqueeze(1)
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    out = torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
    return out.type_as(x)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al. 2022): a geometric sequence, 2^-8/n ... 2^-8."""
    def powers(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(powers(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = powers(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(powers(closest) + extra)


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, q_doc: Optional[torch.Tensor], k_doc: Optional[torch.Tensor],
                   window: Optional[int]) -> torch.Tensor:
    """Boolean (batch, 1, q, k) mask: causal by absolute index, same document, within the window.

    q_pos / k_pos are absolute indices in the sequence (with a KV cache, keys reach further back).
    """
    allowed = k_pos[:, None, :] <= q_pos[:, :, None]
    if window is not None:
        allowed &= k_pos[:, None, :] > q_pos[:, :, None] - window
    if q_doc is not None:
        allowed &= q_doc[:, :, None] == k_doc[:, None, :]
    return allowed.unsqueeze(1)


def use_flex(cfg: ModelConfig, doc_ids: Optional[torch.Tensor], cache: Optional[list]) -> bool:
    """Whether a forward pass takes the FlexAttention path: a packed batch (doc_ids given) on a
    CUDA device, rotary positions, no KV cache, `attention: auto`, heads of at least 16 dims."""
    return (doc_ids is not None and doc_ids.is_cuda and cache is None and cfg.position == "rope"
            and cfg.attention == "auto" and cfg.head_dim >= 16)  # FlexAttention's kernel needs head_dim >= 16


_compiled_flex = None


def flex_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask) -> torch.Tensor:
    """FlexAttention, compiled once on CUDA (where it becomes a fused kernel); eager elsewhere,
    forward only, which the CPU tests use to compare it with the dense-mask path."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention as flex

    if not q.is_cuda:
        return flex(q, k, v, block_mask=block_mask, enable_gqa=True)
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex, dynamic=False)
    return _compiled_flex(q, k, v, block_mask=block_mask, enable_gqa=True)


def document_block_mask(doc_ids: torch.Tensor, window: Optional[int]):
    """FlexAttention's block mask for a packed batch: causal, same document, within the window.
    Built once per forward pass and shared by every layer."""
    from torch.nn.attention.flex_attention import create_block_mask

    def allowed(b, h, q, k):
        keep = (k <= q) & (doc_ids[b, q] == doc_ids[b, k])
        if window is not None:
            keep = keep & (k > q - window)
        return keep

    b, t = doc_ids.shape
    return create_block_mask(allowed, B=b, H=None, Q_LEN=t, KV_LEN=t, device=doc_ids.device, _compile=doc_ids.is_cuda)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        kv = cfg.n_kv_heads * cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.wk = nn.Linear(cfg.d_model, kv, bias=False)
        self.wv = nn.Linear(cfg.d_model, kv, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        if cfg.position == "alibi":
            self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)

    def forward(self, x: torch.Tensor, rope: Optional[tuple], positions: torch.Tensor, index: torch.Tensor,
                doc_ids: Optional[torch.Tensor], cache: Optional[dict], block_mask=None) -> torch.Tensor:
        b, t, _ = x.shape
        cfg = self.cfg
        q = self.wq(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, cfg.n_kv_heads, cfg.head_dim).transpose(1, 2)
        if rope is not None:
            q = apply_rope(q, *rope, positions)
            k = apply_rope(k, *rope, positions)
        k_index, k_doc, k_pos = index, doc_ids, positions
        if cache is not None:  # append this step's keys and values to the cache
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
                k_index = torch.cat([cache["index"], index], dim=1)
                k_pos = torch.cat([cache["pos"], positions], dim=1)
                k_doc = torch.cat([cache["doc"], doc_ids], dim=1) if doc_ids is not None else None
            cache.update(k=k, v=v, index=k_index, pos=k_pos, doc=k_doc)
        if block_mask is not None:  # packed batch on the FlexAttention path (see `use_flex`)
            out = flex_attention(q, k, v, block_mask)
            return self.wo(out.transpose(1, 2).reshape(b, t, cfg.d_model))
        plain = doc_ids is None and cfg.sliding_window is None and cfg.position == "rope" and cache is None
        groups = cfg.n_heads // cfg.n_kv_heads
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        if plain:  # the FlashAttention-eligible path
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            mask = attention_mask(index, k_index, doc_ids, k_doc, cfg.sliding_window)
            if cfg.position == "alibi":
                distance = (k_pos[:, None, None, :] - positions[:, None, :, None]).float()  # <= 0 for the past
                bias = self.slopes.view(1, -1, 1, 1) * distance
                bias = bias.masked_fill(~mask, float("-inf"))
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(out.transpose(1, 2).reshape(b, t, cfg.d_model))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        # DeepNorm (Wang et al. 2022), decoder-only: x_{l+1} = LN(alpha * x_l + f(x_l)), alpha = (2N)^(1/4)
        self.alpha = (2 * cfg.n_layers) ** 0.25 if cfg.norm == "deepnorm" else 1.0

    def forward(self, x: torch.Tensor, rope, positions, index, doc_ids, cache, block_mask=None) -> torch.Tensor:
        if self.cfg.norm == "pre":
            x = x + self.attn(self.attn_norm(x), rope, positions, index, doc_ids, cache, block_mask)
            return x + self.mlp(self.mlp_norm(x))
        x = self.attn_norm(self.alpha * x + self.attn(x, rope, positions, index, doc_ids, cache, block_mask))
        return self.mlp_norm(self.alpha * x + self.mlp(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.norm == "pre" else nn.Identity()
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self._rope = None
        self.checkpoint_activations = False  # recompute each block in the backward pass (saves memory)
        self.apply(self._init)
        if cfg.norm == "deepnorm":  # DeepNorm's beta scales the value, output and MLP projections
            beta = (8 * cfg.n_layers) ** -0.25
            for block in self.blocks:
                for lin in (block.attn.wv, block.attn.wo, block.mlp.w1, block.mlp.w2, block.mlp.w3):
                    nn.init.xavier_normal_(lin.weight, gain=beta)
        else:  # GPT-2's scaled init of the residual projections
            for block in self.blocks:
                for lin in (block.attn.wo, block.mlp.w2):
                    nn.init.normal_(lin.weight, std=cfg.init_std / math.sqrt(2 * cfg.n_layers))

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.cfg.init_std)

    def rope(self, device) -> Optional[tuple]:
        if self.cfg.position != "rope":
            return None
        if self._rope is None or self._rope[0].device != device:
            self._rope = rope_tables(self.cfg.head_dim, self.cfg.max_seq_len, self.cfg.rope_theta, device)
        return self._rope

    def forward(self, input_ids: torch.Tensor, labels: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None, doc_ids: Optional[torch.Tensor] = None,
                cache: Optional[list[dict]] = None, start: int = 0, logits_at: Optional[torch.Tensor] = None) -> dict:
        """Logits, and the mean next-token loss over labels != -100 when labels are given.

        `position_ids` default to start..start+T; `doc_ids` (same shape) keep attention inside
        documents; `cache` (one dict per layer) makes generation incremental, `start` being the
        index of the first new token. `logits_at`, a bool (batch, seq) mask, gives the logits of
        those positions only, (K, vocab) in row-major order: the head's matmul and whatever reads
        the logits skip the rest (RL scores only the completion tokens). Raises ValueError for a
        position beyond max_seq_len, or `logits_at` with `labels`.
        """
        b, t = input_ids.shape
        device = input_ids.device
        index = torch.arange(start, start + t, device=device).expand(b, t)
        positions = index if position_ids is None else position_ids
        if int(positions.max()) >= self.cfg.max_seq_len:
            raise ValueError(f"position {int(positions.max())} is beyond max_seq_len {self.cfg.max_seq_len}")
        hidden = self.hidden(input_ids, positions, index, doc_ids, cache)
        if logits_at is not None:
            if labels is not None:
                raise ValueError("logits_at gives the logits of some positions; the loss needs all of them (labels)")
            return {"logits": self.head(hidden[logits_at])}
        logits = self.head(hidden)
        out = {"logits": logits}
        if labels is not None:
            total, count = token_loss(logits, labels)
            out["loss"] = total / count.clamp(min=1)
        return out

    def hidden(self, input_ids: torch.Tensor, positions: torch.Tensor, index: torch.Tensor,
               doc_ids: Optional[torch.Tensor] = None, cache: Optional[list[dict]] = None) -> torch.Tensor:
        """The final normalized hidden states, (batch, seq, d_model): what the head (or a reward
        head) reads."""
        x = self.embed(input_ids)
        rope = self.rope(input_ids.device)
        block_mask = document_block_mask(doc_ids, self.cfg.sliding_window) if use_flex(self.cfg, doc_ids, cache) else None
        for i, block in enumerate(self.blocks):
            if self.checkpoint_activations and self.training and cache is None:
                x = checkpoint(block, x, rope, positions, index, doc_ids, None, block_mask, use_reentrant=False)
            else:
                x = block(x, rope, positions, index, doc_ids, cache[i] if cache is not None else None, block_mask)
        return self.norm(x)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 0.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, eos_id: Optional[int] = None, use_cache: bool = True,
                 generator: Union[None, torch.Generator, Sequence[torch.Generator]] = None) -> torch.Tensor:
        """Continue each prompt: greedy at temperature 0, else sampling with top-k / top-p
        (`generator`: one, or one per equal block of rows: `sample_next`). Stops early when every
        sequence has produced `eos_id`."""
        self.eval()
        seq = prompt
        cache = [dict() for _ in self.blocks] if use_cache else None
        done = torch.zeros(prompt.size(0), dtype=torch.bool, device=prompt.device)
        step_input, start = seq, 0
        for _ in range(max_new_tokens):
            if seq.size(1) >= self.cfg.max_seq_len:
                break
            last = torch.zeros(step_input.shape if use_cache else seq.shape, dtype=torch.bool, device=seq.device)
            last[:, -1] = True  # the head only where the next token is read (a prompt's other positions skip it)
            if use_cache:
                logits = self(step_input, cache=cache, start=start, logits_at=last)["logits"]
            else:
                logits = self(seq, logits_at=last)["logits"]
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            start = seq.size(1)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            step_input = nxt[:, None]
            if eos_id is not None and bool(done.all()):
                break
        return seq


def reorder_cache(cache: list[dict], rows: torch.Tensor) -> None:
    """Make row i of every layer's KV cache a copy of row `rows[i]`, in place (`rows`: 1-D long
    indices, repeats allowed, any length): beam search hands each surviving beam the cache of the
    beam it extends (transformers' `Cache.reorder_cache`)."""
    for layer in cache:
        for key, value in layer.items():
            if value is not None:
                layer[key] = value.index_select(0, rows)


def _cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), labels, ignore_index=-100, reduction="sum")


_cross_entropy = _cross_entropy_sum


def compile_token_loss() -> None:
    """Compile the cross-entropy (asked for by `compile: true`): fused, it reads the bf16 logits
    once instead of writing an fp32 copy and a log-softmax of batch x sequence x vocabulary, which
    cost a 125M model on an H100 about a sixth of its step. Process-wide and the same function, so
    a later stage in the same process (`llmpipe run`) keeps the compiled one."""
    global _cross_entropy
    if _cross_entropy is _cross_entropy_sum:
        _cross_entropy = torch.compile(_cross_entropy_sum)


def token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy summed over labels != -100 (in fp32), and how many there were;
    sums rather than a mean so batches, ranks and padding combine exactly."""
    flat = labels.reshape(-1)
    return _cross_entropy(logits, flat), (flat != -100).sum()


def sample_next(logits: torch.Tensor, temperature: float, top_k: Optional[int], top_p: Optional[float],
                generator: Union[None, torch.Generator, Sequence[torch.Generator]] = None) -> torch.Tensor:
    """The next token of each row: the most likely at temperature 0, else drawn from
    softmax(logits / temperature) within top-k / top-p. A temperature so small that the division
    leaves float32 (1e-45) is its limit, greedy: softmax would give NaN. `generator` may be a
    sequence of n generators: the rows are then n equal consecutive blocks, each drawn with its
    own, as it would be drawn in a batch of its own (RL samples many prompts' groups in one batch,
    each from its prompt's seed). Raises ValueError when n does not divide the rows."""
    if temperature <= 0:
        return logits.argmax(-1)
    scaled = logits.float() / temperature
    if not bool(torch.isfinite(scaled)[torch.isfinite(logits)].all()):
        return logits.argmax(-1)
    logits = scaled
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    if generator is None or isinstance(generator, torch.Generator):
        return categorical_draw(probs, generator)
    if not generator or probs.size(0) % len(generator):
        raise ValueError(f"{len(generator)} generators cannot split {probs.size(0)} rows into equal blocks")
    blocks = probs.split(probs.size(0) // len(generator))
    return torch.cat([categorical_draw(b, g) for b, g in zip(blocks, generator)])


def categorical_draw(probs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One index per row of `probs` ([rows, V], non-negative, each row with some mass; it need not
    sum to 1), index i drawn with probability probs[i] / sum(probs): inverse-CDF sampling, one
    uniform per row from `generator` placed on the row's cumulative sum (torch.searchsorted). The
    distribution of torch.multinomial(probs, 1), several times faster on CPU for rows of 8,192
    (`python bench/sampling_draw.py`: 256 rows, 2 threads, about 2 ms against 42 ms).
    An index of zero probability is never drawn. The cumulative sum is float32 (on CUDA also summed
    in float32, as torch.multinomial's there: aten/src/ATen/native/cuda/MultinomialKernel.cu,
    `sampleMultinomialOnce`; torch's CPU cumsum sums in float64 and rounds each entry, and CPU
    multinomial sums in float64): a token below about 6e-8 of the sum before it can get an interval
    of zero width and is then not drawn, for logits ~ N(0, 2.5^2) on average 1.7e-4 of a
    128,000-token row's mass and 1.7e-6 of an 8,192-token one (at most 2.9e-4 and 2.3e-5 over the
    bench's rows at logit scales 1 to 4). A float64 cumulative sum would close that gap at about four times the time per draw
    (the bench, 256 x 8,192: 16.1 ms against 4.0 ms at 1 thread, 9.3 against 2.3 at 2). Returns
    [rows] int64. Raises ValueError for a row with no mass or a non-finite value (a model whose
    weights went NaN), as torch.multinomial does."""
    probs = probs.float()  # a bf16 / fp16 running sum would lose the small probabilities
    cdf = probs.cumsum(-1)
    total = cdf[:, -1]
    if not bool((torch.isfinite(total) & (total > 0)).all()) or bool((probs < 0).any()):
        raise ValueError("the next-token probabilities hold NaN, inf, negative values or no mass (non-finite logits: "
                         "are the model's weights finite?)")
    u = torch.rand(probs.size(0), 1, generator=generator, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    index = torch.searchsorted(cdf, u, right=True).clamp_max(probs.size(-1) - 1)
    stuck = (probs.gather(1, index) <= 0).squeeze(1)  # u rounded up to the total passed the last token with mass
    if bool(stuck.any()):
        index[stuck] = probs.size(-1) - 1 - (probs[stuck].flip(-1) > 0).to(torch.int8).argmax(-1, keepdim=True)
    return index.squeeze(-1)
