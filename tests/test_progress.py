"""Progress of a local data stage: the workers' tallies add up to the input, and a log (not a
terminal) gets periodic lines with elapsed time and ETA."""
import io
import re
import threading
import time

from pipelines import progress
from pipelines.cli import main


def test_tallies_from_worker_threads_add_up_and_lines_carry_an_eta():
    stream = io.StringIO()
    with progress.Reporter("clean", total_bytes=4000, total_files=4, stream=stream, every=0.2) as reporter:
        def worker():
            for _ in range(2):
                progress.note(nbytes=1000, docs=5)
                progress.note(files=1)
                time.sleep(0.3)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.2)  # the tallies are flushed at least once a second
        assert reporter.totals() == {"bytes": 4000, "docs": 20, "files": 4}
    lines = stream.getvalue().splitlines()
    assert lines and all(re.match(r"clean: [\d.]+/0\.0 MB \(\d+%\), \d/4 files, [\d,]+ documents \(\d+/s\), "
                                  r"\d+s elapsed, ETA (\d+s|\?)$", line) for line in lines)
    assert lines[-1].startswith("clean: 0.0/0.0 MB (100%), 4/4 files, 20 documents")
    assert progress.ENV not in __import__("os").environ


def test_a_stage_logged_to_a_file_shows_its_progress(small_corpus, tmp_path, monkeypatch, capsys):
    folder, _ = small_corpus
    monkeypatch.setenv(progress.EVERY_ENV, "0.2")
    assert main(["dedup", "--input", str(folder / "shard-*.jsonl.gz"), "--output", str(tmp_path / "out"),
                 "--set", "dedup.eval_labels=null"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dedup: ") and "elapsed, ETA" in line]
    assert lines, err
    total = sum(p.stat().st_size for p in folder.glob("shard-*.jsonl.gz"))
    assert re.match(rf"dedup: {total / 1e6:.1f}/{total / 1e6:.1f} MB \(100%\), 2/2 files, ", lines[-1])


def test_training_log_lines_carry_elapsed_time_and_eta(packed, tmp_path, capsys):
    from tests.conftest import pretrain_args
    from training.loop import elapsed_eta

    assert elapsed_eta(65, 10, 30) == "1m05s elapsed, ETA 3m15s" and elapsed_eta(0, 0, 5) == "0s elapsed, ETA ?"
    args = [a for a in pretrain_args(packed, tmp_path / "out", "--set", "pretrain.max_steps=2",
                                     "--set", "pretrain.micro_batch=2", "--set", "pretrain.eval_every=2") if a != "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"step 2/2: loss [\d.]+, lr \S+, [\d,]+ tokens/s, \d+s elapsed, ETA 0s", out), out
