"""Shared fixtures: a small slice of the demo corpus and one clean-stage run over it."""
import gzip
import json
from pathlib import Path

import pytest
from hypothesis import settings

from llmdata.sample_data import write_corpus
from training.metrics import read_metrics
from pipelines.cli import main

# No per-example deadline: a first example that loads a segmenter's dictionary (PyThaiNLP: ~0.8 s)
# or runs on a loaded 2-core CI machine is not a failure; speed is measured in bench/, not here.
settings.register_profile("llmpipe", deadline=None)
settings.load_profile("llmpipe")

@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("demo")
    # Without the multilingual slice until the clean stage identifies languages: its random-Han
    # and mojibake junk pass the statistical filter, below test_clean_stage's junk threshold.
    summary = write_corpus(str(folder), seed=0, shards=2, max_docs=60, multilingual=False)
    return folder, summary


@pytest.fixture(scope="session")
def clean_run(small_corpus, tmp_path_factory) -> Path:
    folder, _ = small_corpus
    out = tmp_path_factory.mktemp("clean") / "out"
    code = main([
        "clean", "--config", "configs/pipeline.yaml", "--input", str(folder / "shard-*.jsonl.gz"),
        "--output", str(out), "--set", f"clean.eval_labels={folder / 'labels.jsonl'}",
    ])
    assert code == 0
    return out


def read_jsonl_gz(pattern_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(pattern_dir.glob("part-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


@pytest.fixture(scope="session")
def packed(clean_run, tmp_path_factory) -> tuple[Path, Path]:
    """A tokenizer (vocabulary 800) and a pack stage (seq_len 128) over the clean run."""
    root = tmp_path_factory.mktemp("pack")
    tok = root / "tok"
    assert main(["tokenizer", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--output", str(tok),
                 "--set", "tokenizer.vocab_size=800"]) == 0
    out = root / "pack"
    assert main(["pack", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--tokenizer", str(tok), "--output", str(out),
                 "--set", "pack.seq_len=128", "--set", "pack.val_fraction=0.1"]) == 0
    return out, tok


SMALL = ["--set", "pretrain.model_overrides={d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2}",
         "--set", "pretrain.lr=3e-3", "--set", "pretrain.warmup_steps=2", "--set", "pretrain.tensorboard=false",
         "--set", "pretrain.min_lr=5e-4", "--set", "pretrain.generate.max_new_tokens=8"]  # the fixture keeps its own schedule


def pretrain_args(packed, out: Path, *extra: str) -> list[str]:
    pack, tok = packed
    return ["pretrain", "--config", "configs/pipeline.yaml", "--input", str(pack), "--tokenizer", str(tok),
            "--output", str(out), "--no-progress", *SMALL, *extra]


def train_losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(str(out / "metrics.jsonl")) if r["event"] == "train"}


@pytest.fixture(scope="session")
def pretrained(packed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "out"
    assert main(pretrain_args(packed, out, "--set", "pretrain.max_steps=30", "--set", "pretrain.micro_batch=4",
                              "--set", "pretrain.eval_every=10", "--set", "pretrain.save_every=10",
                              "--set", "pretrain.tensorboard=true")) == 0
    return out
