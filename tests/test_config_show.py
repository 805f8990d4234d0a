"""Shared training defaults written once (`train:`), and `llmpipe config --show`: the resolved
config with each key's meaning, which loads back as the same config."""
import typing

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from pipelines.cli import main
from pipelines.config import SHOW_WIDTH, PipelineConfig, describe_config, load_config
from pipelines.registry import STAGES
from training.options import TrainSection

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
    assert main(["config", "show", "--config", "configs/pipeline.yaml", "--set", "train.seed=3"]) == 0  # the subcommand form
    assert capsys.readouterr().out == text


def test_an_empty_train_block_means_no_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  # lr: 0.01\n")
    assert load_config(str(path)).train == {}


def _expected_notes(cfg: BaseModel) -> list[str]:
    """Every description `config --show` must print for `cfg`, in the order of its keys."""
    notes = []
    for name, field in type(cfg).model_fields.items():
        notes.append(field.description)
        value = getattr(cfg, name)
        items = value.values() if isinstance(value, dict) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                notes.extend(_expected_notes(item))
        if isinstance(cfg, PipelineConfig) and name == "train":
            notes.extend(TrainSection.model_fields[key].description for key in value)
    return notes


def _comments(text: str) -> str:
    """The comments of a YAML text (the part after `# `), joined by spaces."""
    parts = [line.split("# ", 1)[1] for line in text.splitlines() if "# " in line]
    return " ".join(" ".join(parts).split())


def test_show_prints_each_keys_description_in_order_within_the_width(capsys):
    overrides = ["train.seed=3", "train.warmup_steps=5", "clean.normalize.word_map={btw: by the way}"]
    sets = [arg for override in overrides for arg in ("--set", override)]
    assert main(["config", "--show", "--config", "configs/pipeline.yaml", *sets]) == 0
    text = capsys.readouterr().out
    cfg = load_config("configs/pipeline.yaml", overrides)
    comments, at = _comments(text), 0
    for note in _expected_notes(cfg):
        found = comments.find(" ".join(note.split()), at)
        assert found >= 0, f"not printed (in order): {note!r}"
        at = found + 1
    too_long = [line for line in text.splitlines() if "# " in line and len(line) > SHOW_WIDTH]
    assert not too_long, too_long
    assert "  train_tokens: [<|system|>, <|user|>, <|assistant|>, <|end|>]" in text  # a long value: its note above
    assert "\n    word_map:  # " in text and "\n      btw: by the way\n" in text  # a map: one entry a line


def test_show_marks_the_values_a_stage_takes_from_the_train_block(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("train: {seed: 7, grad_clip: 0.5}\nsft: {grad_clip: 2.0}\n")
    assert main(["config", "--show", "--config", str(path), "--set", "dpo.seed=1"]) == 0
    sections = {}
    for line in capsys.readouterr().out.splitlines():
        if line and not line.startswith((" ", "#")):
            current = sections.setdefault(line.split(":")[0], [])
        elif line.startswith("  ") and not line.startswith("   "):
            current.append(line.strip())
    marked = {name: sorted(line.split(":")[0] for line in lines if "(from train:)" in line)
              for name, lines in sections.items()}
    assert marked["train"] == [] and marked["clean"] == []
    assert marked["pretrain"] == marked["lora"] == marked["reward"] == ["grad_clip", "seed"]
    assert marked["sft"] == ["seed"] and marked["dpo"] == ["grad_clip"]
    assert "seed: 7  # (from train:) seed of the weights' initialization" in "\n".join(sections["pretrain"])


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models a field's type holds: itself, or inside Optional, list, dict, Union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _schema_keys(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Every key under `model`, recursively (a map's entries as `*`; the train: block's keys are
    the shared training options), with its schema description ("" when it has none)."""
    keys = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        keys[key] = (field.description or "").strip()
        if model is PipelineConfig and name == "train":
            nested = [TrainSection]
        else:
            nested = _models_in(field.annotation)
            if typing.get_origin(field.annotation) is dict or any(
                    typing.get_origin(a) is dict for a in typing.get_args(field.annotation)):
                key += ".*"
        for sub in nested:
            keys.update(_schema_keys(sub, f"{key}."))
    return keys


def test_every_key_of_the_schema_says_what_it_means():
    keys = _schema_keys(PipelineConfig)
    assert {"train.seed", "clean.outliers.features.*.side", "clean.missing.fields.*.rule", "dpo.beta"} <= set(keys)
    missing = [key for key, description in keys.items() if not description]
    assert not missing, f"{len(missing)} of {len(keys)} keys without a description: {', '.join(missing)}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(word_map=st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=4),
       prompts=st.lists(st.text(max_size=200), max_size=3),
       text=st.text(min_size=1, max_size=300))  # a path: never empty
@example(word_map={}, prompts=[], text="\xa0")  # str.strip() would take it away
@example(word_map={"k\n#": "v  # x"}, prompts=["line one\nline two"], text="a\u2028b\x85")  # YAML line breaks
def test_show_loads_back_whatever_text_the_values_hold(word_map, prompts, text):
    """Any Unicode in a key or value (line breaks, '#', quotes, NEL, U+2028, a 300-character
    path) stays one line of valid YAML beside its comment, and the output loads back as the same
    config."""
    cfg = PipelineConfig.model_validate({
        "run": {"input": text}, "clean": {"normalize": {"word_map": word_map}, "eval_labels": text},
        "pretrain": {"generate": {"prompts": prompts}}, "train": {"seed": 5},
    })
    shown = "\n".join(describe_config(cfg))
    assert PipelineConfig.model_validate(yaml.safe_load(shown)) == cfg
