"""The pretraining stage: next-token training of the decoder on the pack stage's token files.

    04-pack (train/val .bin/.idx + plans) + 03-tokenizer ─► DeepSpeed engine ─► 05-pretrain/
        checkpoints/step_N/   engine checkpoints with client state (resume after a kill or --until-step)
        final/                model.safetensors + model_config.json + the tokenizer (self-contained)
        metrics.jsonl, tensorboard/, loss.png, samples.json, report.md, manifest.json

One rank runs in-process (`llmpipe pretrain`); several ranks or nodes run the same code under the
`deepspeed` launcher. The stage follows the stage contract: skipped when its manifest matches the
config and the upstream manifests; a partial run (killed, or stopped with --until-step) leaves
checkpoints that the next run with the same fingerprint resumes from, and no manifest.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch

from training.generate import Sampling
from training.model import ModelConfig
from training.options import PretrainSection
from training.recipe import Outcome, Recipe
from training.stage import TrainingInputError, folder_fingerprint, require

def generate_samples(model_dir: str, tokenizer, prompts: list[str], sampling: Sampling, seed: int = 0) -> list[dict]:
    """Continuations of each prompt by the exported model (so the export itself is exercised)."""
    from training.export import load_model
    from training.generate import continuation

    model = load_model(model_dir)
    gen = torch.Generator().manual_seed(seed)
    return [{"prompt": p, "completion": continuation(model, tokenizer, p, sampling, gen)} for p in prompts]


def model_config(section: PretrainSection, vocab_size: int, seq_len: int) -> tuple[ModelConfig, Optional[dict]]:
    """The architecture to train, and the weights to start from (None: random): the preset with
    its overrides, or the `init_from` folder's model. A mistake in either is one line."""
    from training.export import load_model
    from training.model import load_preset

    if section.init_from:
        model = load_model(section.init_from)
        cfg = model.cfg
        if cfg.vocab_size != vocab_size or cfg.max_seq_len < seq_len:
            raise TrainingInputError(
                f"pretrain.init_from {section.init_from} has vocabulary {cfg.vocab_size} and max_seq_len "
                f"{cfg.max_seq_len}; this tokenizer has {vocab_size} ids and the pack {seq_len} tokens a sequence")
        return cfg, model.state_dict()
    try:  # an unknown preset or key, or a value the model refuses, is a config error: one line
        preset = load_preset(section.model, section.presets)
        cfg = load_preset(section.model, section.presets, **{
            "vocab_size": vocab_size, "max_seq_len": max(preset.max_seq_len, seq_len), **section.model_overrides})
    except (TypeError, ValueError) as err:
        raise TrainingInputError(f"pretrain.model {section.model!r} with model_overrides {section.model_overrides}: {err}") from None
    return cfg, None


class PretrainRecipe(Recipe):
    """Next-token training of a new (or `init_from`) decoder on a pack stage's token files."""

    stage, title = "pretrain", "Pretraining"
    section: PretrainSection

    def __init__(self, section: PretrainSection, pack_dir: str, tokenizer_dir: str, out: str,
                 log: Callable[[str], None] = print):
        super().__init__(section, out, log)
        self.pack_dir, self._tokenizer_dir = pack_dir, tokenizer_dir

    def inputs(self) -> dict:
        section = self.section
        require(os.path.join(self.pack_dir, "shards.json"), "packed data (shards.json of a pack stage)")
        require(os.path.join(self._tokenizer_dir, "llmpipe_tokenizer.json"),
                "tokenizer (llmpipe_tokenizer.json of a tokenizer stage)")
        inputs = {"pack": folder_fingerprint(self.pack_dir), "tokenizer": folder_fingerprint(self._tokenizer_dir)}
        if section.init_from:
            require(os.path.join(section.init_from, "model.safetensors"), "pretrain.init_from model (model.safetensors)")
            inputs["init_from"] = folder_fingerprint(section.init_from)
        return inputs

    def prepare(self) -> None:
        from llmdata.tokenizer_io import BPETokenizer
        from training.data import PackedDataset, read_pack_info

        self.tokenizer = tokenizer = BPETokenizer.load(self._tokenizer_dir)
        self.packed = packed = read_pack_info(self.pack_dir)
        self.seq_len = packed["seq_len"]
        if packed["eot_id"] != tokenizer.eot_id or not 0 <= packed["pad_id"] < tokenizer.vocab_size:
            raise TrainingInputError(
                f"{self.pack_dir} was packed with another tokenizer (end-of-text id {packed['eot_id']}, padding id "
                f"{packed['pad_id']}) than {self._tokenizer_dir} (end-of-text id {tokenizer.eot_id}, vocabulary "
                f"{tokenizer.vocab_size}); pass the tokenizer the pack stage used")
        self.train_set = PackedDataset(self.pack_dir, "train")
        try:
            self.val_set = PackedDataset(self.pack_dir, "val")
        except FileNotFoundError:
            self.val_set = None
        self.cfg, self.initial = model_config(self.section, tokenizer.vocab_size, self.seq_len)

    def model_to_train(self, rank: int) -> torch.nn.Module:
        from training.loop import seed_everything
        from training.model import Transformer

        section, cfg = self.section, self.cfg
        seed_everything(section.seed)
        if section.pipeline_stages > 1:
            from training.pipe import build_pipeline, load_transformer_state

            model = build_pipeline(cfg, section.pipeline_stages, section.activation_checkpointing)
            if self.initial is not None:
                load_transformer_state(model, self.initial, cfg)
            return model
        model = Transformer(cfg)
        if self.initial is not None:
            model.load_state_dict(self.initial)
        model.checkpoint_activations = section.activation_checkpointing
        return model

    def describe(self) -> str:
        cfg = self.cfg
        origin = f"from {self.section.init_from}" if self.initial is not None else self.section.model
        return (f"pretrain: model {origin} ({cfg.n_params() / 1e6:.2f}M parameters, vocab {cfg.vocab_size}, "
                f"{cfg.n_layers} layers, d_model {cfg.d_model}), {len(self.train_set)} training sequences of "
                f"{self.seq_len} tokens -> {self.out}")

    def trainer_kwargs(self) -> dict:
        return {"tokens_per_sample": self.seq_len, "flops_per_token": self.cfg.flops_per_token(self.seq_len)}

    def save(self, state: dict[str, torch.Tensor]) -> tuple[str, dict[str, str]]:
        from training.export import save_model

        final = os.path.join(self.out, "final")
        save_model(final, state, self.cfg)
        return final, {"weights": "final/model.safetensors", "model_config": "final/model_config.json",
                       "checkpoints": "checkpoints/"}

    def tokenizer_dir(self) -> str:
        return self._tokenizer_dir

    def evaluate(self, summary: dict, final_dir: str) -> Outcome:
        g, section = self.section.generate, self.section
        samples = generate_samples(final_dir, self.tokenizer, g.prompts,
                                   Sampling(g.max_new_tokens, g.temperature, g.top_k, g.top_p), section.seed)
        n_val = len(self.val_set) if self.val_set else 0
        data = {"training sequences": len(self.train_set), "validation sequences": n_val, "sequence length": self.seq_len,
                "packing": self.packed.get("strategy"), "packed from": self.pack_dir, "tokenizer": self._tokenizer_dir}
        counts = {"steps": summary["steps"], "tokens": summary["tokens"], "train_sequences": len(self.train_set),
                  "val_sequences": n_val, "parameters": self.cfg.n_params()}
        line = (f"pretrain: {summary['steps']} steps, {summary['tokens']:,} tokens, val loss "
                f"{summary.get('val_loss', float('nan')):.4f}, {summary['tokens_per_s']:,.0f} tokens/s; "
                f"see {self.out}/report.md")
        return Outcome(data, counts, line, samples=samples, manifest={"samples": samples})
