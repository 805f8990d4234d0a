"""What can be checked of a cluster run without a cluster: every data stage builds its pipeline
with Dataflow, Flink and Spark options and reaches submission with them intact; the package the
workers install (`--setup_file`) builds and imports; several DirectRunner worker processes give
the results of one."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import (FlinkRunnerOptions, GoogleCloudOptions, PipelineOptions, SetupOptions,
                                                  SparkRunnerOptions, StandardOptions)
from apache_beam.runners.runner import PipelineRunner

from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]

CLUSTER_OPTIONS = {
    "dataflow": ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
                 "--temp_location=gs://my-bucket/tmp", "--staging_location=gs://my-bucket/staging",
                 "--setup_file=./setup.py", "--max_num_workers=50", "--experiments=use_runner_v2"],
    "flink": ["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--environment_type=DOCKER",
              "--parallelism=64", "--setup_file=./setup.py"],
    "spark": ["--runner=SparkRunner", "--spark_master_url=spark://spark-master:7077", "--environment_type=DOCKER",
              "--setup_file=./setup.py"],
}


class Submitted(Exception):
    """Raised where the runner would have submitted the job."""


class Recorder(PipelineRunner):
    """Stands in for the cluster runner: keeps the portable pipeline it was handed, submits nothing."""

    def __init__(self, seen: list):
        self.seen = seen

    def run_pipeline(self, pipeline, options):
        self.seen.append((pipeline.to_runner_api(), options))
        raise Submitted()


@pytest.fixture
def recorded(monkeypatch):
    seen: list = []

    def recording_pipeline(beam_args):
        return beam.Pipeline(runner=Recorder(seen), options=PipelineOptions(beam_args))

    for module in ("clean", "dedup", "tokenizer", "pack"):
        monkeypatch.setattr(f"pipelines.{module}.beam_pipeline", recording_pipeline)
    return seen


@pytest.mark.parametrize("cluster", sorted(CLUSTER_OPTIONS))
def test_every_data_stage_builds_for_the_cluster_runners(cluster, recorded, small_corpus, clean_run, packed, tmp_path):
    kept = str(clean_run / "kept" / "part-*.jsonl.gz")
    stages = {
        "clean": ["--input", str(small_corpus[0] / "shard-*.jsonl.gz")],
        "dedup": ["--input", kept],
        "tokenizer": ["--input", kept, "--set", "tokenizer.vocab_size=600"],
        "pack": ["--input", kept, "--tokenizer", str(packed[1])],
    }
    for stage, args in stages.items():
        with pytest.raises(Submitted):
            main([stage, *args, "--output", str(tmp_path / stage), "--", *CLUSTER_OPTIONS[cluster]])
        proto, options = recorded[-1]
        assert len(proto.components.transforms) > 20, stage  # the whole graph, pickled for the workers
        assert options.view_as(StandardOptions).runner == CLUSTER_OPTIONS[cluster][0].split("=")[1]
        assert options.view_as(SetupOptions).setup_file == "./setup.py"
        assert not (tmp_path / stage / "manifest.json").exists()  # nothing is claimed for a job that did not run
    _, options = recorded[-1]
    if cluster == "dataflow":
        assert options.view_as(GoogleCloudOptions).temp_location == "gs://my-bucket/tmp"
    elif cluster == "flink":
        assert options.view_as(FlinkRunnerOptions).flink_master == "flink-jobmanager:8081"
    else:
        assert options.view_as(SparkRunnerOptions).spark_master_url == "spark://spark-master:7077"


def test_the_workers_package_builds_from_the_setup_file_and_imports(tmp_path):
    from apache_beam.runners.portability.stager import Stager

    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "setup.py", "pyproject.toml", "README.md", "llmdata", "pipelines", "training"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / "dist").mkdir()
    sdist = Stager._build_setup_package(str(src / "setup.py"), str(tmp_path / "dist"))  # what Beam stages for workers
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    for module in ("llmdata/records.py", "pipelines/clean.py", "pipelines/dedup.py", "training/model.py"):
        assert any(n.endswith(module) for n in names), module
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), sdist], check=True, capture_output=True)
    probe = ("import json, llmdata.records, pipelines.clean, pipelines.dedup, pipelines.tokenizer, pipelines.pack; "
             "print(json.dumps(pipelines.clean.__file__))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out).startswith(str(target))  # the installed copy, not the checkout


def test_two_direct_runner_workers_give_the_results_of_one(packed, clean_run, tmp_path):
    kept = str(clean_run / "kept" / "part-*.jsonl.gz")
    for workers in ("1", "2"):
        assert main(["pack", "--input", kept, "--tokenizer", str(packed[1]), "--output", str(tmp_path / workers),
                     "--workers", workers, "--set", "pack.seq_len=128", "--set", "pack.val_fraction=0.1"]) == 0
    one, two = (json.loads((tmp_path / w / "shards.json").read_text()) for w in ("1", "2"))
    assert one["summary"] == two["summary"]
    token_files = sorted(p.name for p in (tmp_path / "1").glob("*-*.*") if p.suffix in (".bin", ".idx"))
    assert token_files and token_files == sorted(p.name for p in (tmp_path / "2").glob("*-*.*") if p.suffix in (".bin", ".idx"))
    for name in token_files:  # the same tokens, byte for byte
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
