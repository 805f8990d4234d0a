"""Where each stage of a run lives: `runs/<name>/<NN-stage>/`, one folder per stage in order."""
from __future__ import annotations

from pipelines import fs
from pipelines.config import PipelineConfig
from pipelines.registry import STAGES, spec

#: Stage folders in pipeline order (from the stage registry); a stage reads the folder of the stage before it.
STAGE_FOLDERS = {s.name: s.folder for s in STAGES}


def run_root(cfg: PipelineConfig) -> str:
    return fs.join(cfg.run.root, cfg.run.name)


def stage_dir(cfg: PipelineConfig, stage: str) -> str:
    return fs.join(run_root(cfg), spec(stage).folder)
