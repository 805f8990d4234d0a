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

from pipelines.manifest import stage_fingerprint, write_manifest
from training.generate import Sampling
from training.model import ModelConfig
from training.options import PretrainSection
from training.stage import TrainingInputError, complete_model_dir, finished, folder_fingerprint, require, start_stage

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


def run_pretrain(section: PretrainSection, pack_dir: str, tokenizer_dir: str, out: str, force: bool = False,
                 until_step: Optional[int] = None, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Train (or resume) and, when max_steps is reached, export, report and write the manifest."""
    import torch.distributed as dist

    from llmdata.tokenizer_io import BPETokenizer
    from training.data import PackedDataset, read_pack_info
    from training.export import save_model
    from training.hf_export import export_stage_model
    from training.loop import Trainer, seed_everything
    from training.model import Transformer

    require(os.path.join(pack_dir, "shards.json"), "packed data (shards.json of a pack stage)")
    require(os.path.join(tokenizer_dir, "llmpipe_tokenizer.json"), "tokenizer (llmpipe_tokenizer.json of a tokenizer stage)")
    config = section.model_dump(mode="json")
    inputs = {"pack": folder_fingerprint(pack_dir), "tokenizer": folder_fingerprint(tokenizer_dir)}
    if section.init_from:
        require(os.path.join(section.init_from, "model.safetensors"), "pretrain.init_from model (model.safetensors)")
        inputs["init_from"] = folder_fingerprint(section.init_from)
    fingerprint = stage_fingerprint("pretrain", config, inputs)
    done = finished("pretrain", out, fingerprint, force, log)
    if done:
        return done

    # The inputs are read and checked before the folder is touched: a wrong one clears no checkpoints.
    tokenizer = BPETokenizer.load(tokenizer_dir)
    packed = read_pack_info(pack_dir)
    seq_len = packed["seq_len"]
    if packed["eot_id"] != tokenizer.eot_id or not 0 <= packed["pad_id"] < tokenizer.vocab_size:
        raise TrainingInputError(
            f"{pack_dir} was packed with another tokenizer (end-of-text id {packed['eot_id']}, padding id "
            f"{packed['pad_id']}) than {tokenizer_dir} (end-of-text id {tokenizer.eot_id}, vocabulary "
            f"{tokenizer.vocab_size}); pass the tokenizer the pack stage used")
    train = PackedDataset(pack_dir, "train")
    try:
        val = PackedDataset(pack_dir, "val")
    except FileNotFoundError:
        val = None
    cfg, initial = model_config(section, tokenizer.vocab_size, seq_len)
    rank, say = start_stage("pretrain", out, fingerprint, force, log)
    seed_everything(section.seed)
    if section.pipeline_stages > 1:
        from training.pipe import build_pipeline, load_transformer_state

        model = build_pipeline(cfg, section.pipeline_stages, section.activation_checkpointing)
        if initial is not None:
            load_transformer_state(model, initial, cfg)
    else:
        model = Transformer(cfg)
        if initial is not None:
            model.load_state_dict(initial)
        model.checkpoint_activations = section.activation_checkpointing
    origin = f"from {section.init_from}" if initial is not None else section.model
    say(f"pretrain: model {origin} ({cfg.n_params() / 1e6:.2f}M parameters, vocab {cfg.vocab_size}, "
        f"{cfg.n_layers} layers, d_model {cfg.d_model}), {len(train)} training sequences of {seq_len} tokens "
        f"-> {out}")
    trainer = Trainer(model, section, out, train, val, tokens_per_sample=seq_len,
                      flops_per_token=cfg.flops_per_token(seq_len), fingerprint=fingerprint, log=say)
    summary, state = trainer.run("pretrain", cfg, until_step, progress)
    if not summary["finished"]:
        return summary

    final = os.path.join(out, "final")
    manifest: dict = {}
    if rank == 0:
        save_model(final, state, cfg)
        complete_model_dir(tokenizer_dir, final)
        hf_dir = export_stage_model(final, os.path.join(out, "hf"), say) if section.export_hf else None
        g = section.generate
        samples = generate_samples(final, tokenizer, g.prompts, Sampling(g.max_new_tokens, g.temperature, g.top_k, g.top_p),
                                   section.seed)
        from training.report import write_training_report

        write_training_report(out, "Pretraining", section, cfg, summary, samples, {
            "training sequences": len(train), "validation sequences": len(val) if val else 0, "sequence length": seq_len,
            "packing": packed.get("strategy"), "packed from": pack_dir, "tokenizer": tokenizer_dir})
        counts = {"steps": summary["steps"], "tokens": summary["tokens"], "train_sequences": len(train),
                  "val_sequences": len(val) if val else 0, "parameters": cfg.n_params()}
        manifest = write_manifest(out, "pretrain", fingerprint, config, inputs, counts, {"wall_s": summary["wall_s"]},
                                  {"weights": "final/model.safetensors", "model_config": "final/model_config.json",
                                   "checkpoints": "checkpoints/", "metrics": "metrics.jsonl", "report": "report.md",
                                   **({"hf": "hf/"} if hf_dir else {})},
                                  {"summary": summary, "samples": samples})
        say(f"pretrain: {summary['steps']} steps, {summary['tokens']:,} tokens, val loss "
            f"{summary.get('val_loss', float('nan')):.4f}, {summary['tokens_per_s']:,.0f} tokens/s; see {out}/report.md")
    dist.barrier()
    return manifest
