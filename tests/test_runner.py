"""The Beam runner a stage runs on, and the options it is given, are checked up front: the local
runner never tries Prism, and a misspelt option is refused before any output is touched."""
import hashlib
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.runner import BeamOptionsError, resolve_beam_args


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_local_runs_never_try_prism(monkeypatch, small_corpus, tmp_path):
    from apache_beam.runners.portability import prism_runner

    tried = []

    def refuse(self, pipeline, options):  # Beam's DirectRunner would call this first, then fall back
        tried.append(options)
        raise RuntimeError("Prism is not allowed in this test")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    folder, _ = small_corpus
    assert main(["clean", "--config", "configs/pipeline.yaml", "--input", str(folder / "shard-*.jsonl.gz"),
                 "--output", str(tmp_path / "out"), "--set", "clean.eval_labels=null"]) == 0
    assert (tmp_path / "out" / "manifest.json").exists()
    assert tried == []


@pytest.mark.parametrize("beam_args, message", [
    (["--runer=DataflowRunner", "--project=p"], "unknown Beam pipeline option --runer (did you mean --runner?)"),
    (["--runner=DaskRunner"], "Beam runner 'DaskRunner' is not available"),
    (["--project", "p", "stray"], "Beam pipeline option value 'stray' follows no option"),
])
def test_bad_beam_options_are_one_line_and_touch_nothing(beam_args, message, clean_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["tokenizer", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--output", str(out),
                 "--set", "tokenizer.vocab_size=600"]) == 0
    before = _snapshot(out)
    capsys.readouterr()
    code = main(["tokenizer", "--input", str(clean_run / "kept" / "part-*.jsonl.gz"), "--output", str(out),
                 "--set", "tokenizer.vocab_size=600", "--force", "--", *beam_args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("llmpipe: error: ") and message in err and err.count("\n") == 1
    assert _snapshot(out) == before


def test_cluster_options_pass_untouched_and_workers_only_for_the_local_runner():
    dataflow = ["--runner=DataflowRunner", "--project=p", "--region=us-central1", "--temp_location=gs://b/tmp"]
    assert resolve_beam_args(dataflow, workers=4) == dataflow
    flink = ["--runner=FlinkRunner", "--flink_master=host:8081", "--environment_type=DOCKER", "--parallelism=8"]
    assert resolve_beam_args(flink, workers=None) == flink
    assert resolve_beam_args([], workers=2) == ["--runner=DirectRunner", "--direct_num_workers=2",
                                                "--direct_running_mode=multi_processing"]
    assert resolve_beam_args(["--direct_num_workers=8"], workers=2).count("--direct_num_workers=2") == 1
    with pytest.raises(BeamOptionsError):
        resolve_beam_args(["--num_workerz=3"], workers=None)


def test_option_values_workers_and_training_stages_are_checked_in_one_line(capsys):
    for argv, says in [(["clean", "--input", "x", "--", "--num_workers"], "argument --num_workers: expected one argument"),
                       (["clean", "--input", "x", "--", "--runner=apache_beam.runners.NoSuch"], "is not available"),
                       (["pretrain", "--", "--runner=DataflowRunner"], "pretrain is a training stage: it takes no Beam options")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("llmpipe: error: ") and says in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit):  # argparse's usage error
        main(["clean", "--input", "x", "--workers", "0"])
    assert "a whole number of at least 1" in capsys.readouterr().err


def test_worker_processes_run_the_quick_exit_module_and_the_patches_are_undone():
    """`--workers 2` starts pipelines.local_worker (Beam's harness, then os._exit) in each worker
    process, the run gives every element back, and Beam's own command line and close_all are
    restored afterwards."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms import environments

    from pipelines.runner import WORKER_MODULE, beam_pipeline

    beam_close_all = worker_handlers.WorkerHandlerManager.__dict__["close_all"]
    beam_command = environments.SubprocessSDKEnvironment.__dict__["from_command_string"]
    with beam_pipeline(resolve_beam_args([], 2)) as p:
        modules = p | beam.Create(range(40)) | beam.Reshuffle() | beam.Map(lambda _: __import__("sys").modules["__main__"].__spec__.name) | beam.Distinct()
        assert_that(modules, equal_to([WORKER_MODULE]))
    assert worker_handlers.WorkerHandlerManager.__dict__["close_all"] is beam_close_all
    assert environments.SubprocessSDKEnvironment.__dict__["from_command_string"] is beam_command


def test_the_worker_patches_step_aside_for_a_beam_built_otherwise(monkeypatch):
    """A Beam release whose worker command or shutdown is built otherwise gets its own behaviour
    (slower, never broken): nothing is replaced, and a manager without the handler cache this
    relies on closes with Beam's own close_all."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.transforms import environments

    from pipelines.runner import parallel_worker_shutdown, quick_worker_exit

    other = staticmethod(lambda command: ("built otherwise", command))
    monkeypatch.setattr(environments.SubprocessSDKEnvironment, "from_command_string", other)
    with quick_worker_exit():
        assert environments.SubprocessSDKEnvironment.__dict__["from_command_string"] is other
    closed = []

    class Manager:  # Beam's close_all, but no _cached_handlers
        def close_all(self):
            closed.append(self)

    beams_own = Manager.__dict__["close_all"]
    monkeypatch.setattr(worker_handlers, "WorkerHandlerManager", Manager)
    with parallel_worker_shutdown():
        manager = Manager()
        Manager.close_all(manager)
    assert closed == [manager] and Manager.__dict__["close_all"] is beams_own


def test_a_worker_exits_once_the_runner_that_started_it_is_gone():
    """A runner killed by a SIGTERM sent to it alone left Beam's workers waiting for ever while they
    started up; pipelines.local_worker watches the runner's pid and ends with status 1."""
    import os
    import subprocess
    import sys
    import time

    from pipelines.local_worker import RUNNER_PID_ENV
    from pipelines.runner import quick_worker_exit

    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = subprocess.Popen([sys.executable, "-c", "import time\nfrom pipelines.local_worker import exit_when_gone\n"
                               f"exit_when_gone({runner.pid}, 0.05)\ntime.sleep(60)"])
    try:
        time.sleep(0.5)
        assert worker.poll() is None  # the runner lives: the worker stays
        runner.kill()
        runner.wait()
        assert worker.wait(timeout=10) == 1
    finally:
        for p in (runner, worker):
            p.kill()
    before = os.environ.get(RUNNER_PID_ENV)
    with quick_worker_exit():
        assert os.environ[RUNNER_PID_ENV] == str(os.getpid())
    assert os.environ.get(RUNNER_PID_ENV) == before
