"""Shared training defaults written once (`train:`), and `llmpipe config --show`: the resolved
config with each key's meaning, which loads back as the same config."""
import yaml

from pipelines.cli import main
from pipelines.config import PipelineConfig, load_config
from pipelines.registry import STAGES

TRAINING = [s.name for s in STAGES if s.kind == "train"]


def test_the_train_block_fills_every_training_section_that_does_not_set_the_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train: {seed: 7, grad_clip: 0.5}\nsft: {grad_clip: 2.0}\n")
    cfg = load_config(str(path))
    for stage in TRAINING:
        assert getattr(cfg, stage).seed == 7, stage
    assert cfg.sft.grad_clip == 2.0 and cfg.pretrain.grad_clip == 0.5 and cfg.dpo.grad_clip == 0.5
    assert load_config(str(path), ["train.seed=9"]).reward.seed == 9


def test_train_block_mistakes_are_one_line(tmp_path, capsys):
    for override, says in [("train.lrr=1", "config error: train.lrr: unknown key"),
                           ("train.micro_batch=0", "config error: train.micro_batch: Input should be greater than or equal to 1"),
                           ("train=3", "config error: train: expected a mapping")]:
        assert main(["config", "--show", "--set", override]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"llmpipe: error: {says}") and err.count("\n") == 1, err


def test_show_prints_every_key_with_its_meaning_and_loads_back(capsys):
    assert main(["config", "--show", "--config", "configs/pipeline.yaml", "--set", "train.seed=3"]) == 0
    text = capsys.readouterr().out
    shown = PipelineConfig.model_validate(yaml.safe_load(text))
    assert shown == load_config("configs/pipeline.yaml", ["train.seed=3"])
    assert "  name: demo  # run folder name under root" in text
    assert "  num_shards: 4  # output shards, fixed so reruns are identical" in text


def test_an_empty_train_block_means_no_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  # lr: 0.01\n")
    assert load_config(str(path)).train == {}
