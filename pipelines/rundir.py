"""Where each stage of a run lives: `runs/<name>/<NN-stage>/`, one folder per stage in order."""
from __future__ import annotations

from pipelines import fs
from pipelines.config import PipelineConfig

#: Stage folders in pipeline order; a stage reads the folder of the stage before it.
STAGE_FOLDERS = {
    "clean": "01-clean",
    "dedup": "02-dedup",
    "tokenizer": "03-tokenizer",
    "pack": "04-pack",
    "pretrain": "05-pretrain",
    "sft": "06-sft",
    "lora": "07-lora",
    "reward": "08-reward",
    "dpo": "09-dpo",
}


def run_root(cfg: PipelineConfig) -> str:
    return fs.join(cfg.run.root, cfg.run.name)


def stage_dir(cfg: PipelineConfig, stage: str) -> str:
    return fs.join(run_root(cfg), STAGE_FOLDERS[stage])
