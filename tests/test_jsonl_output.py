"""training/stage.py `jsonl_output`: where `generate` and `reward score` write their JSON lines. An
output is written whole or not at all, never over its own input, and never replaces a device or a
symlink with a regular file."""
import os
import stat
import sys

import pytest

from training.stage import TrainingInputError, jsonl_output, output_descriptor, require_usable_rows, summary_stream


def test_a_failed_run_leaves_the_earlier_output_whole_and_no_temporary_file(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text("earlier\n")
    with pytest.raises(RuntimeError):
        with jsonl_output(str(out), []) as f:
            f.write("half\n")
            raise RuntimeError("killed")
    assert out.read_text() == "earlier\n" and os.listdir(tmp_path) == ["o.jsonl"]
    with jsonl_output(str(out), []) as f:
        f.write("new\n")
    assert out.read_text() == "new\n" and os.listdir(tmp_path) == ["o.jsonl"]


def test_a_run_that_fails_on_its_rows_leaves_the_earlier_output_whole(tmp_path):
    """`require_usable_rows` raises after every row has its error line: the command fails (exit 2),
    so the earlier file stays and the error line quotes the first row's reason."""
    out = tmp_path / "o.jsonl"
    out.write_text("earlier\n")
    with pytest.raises(TrainingInputError, match="none of the 1 rows of in.jsonl could be used .the first: line 1: bad"):
        with jsonl_output(str(out), []) as f:
            f.write('{"error": "x"}\n')
            require_usable_rows("generate", "in.jsonl", 1, 1, "line 1: bad\nrow")
    assert out.read_text() == "earlier\n" and os.listdir(tmp_path) == ["o.jsonl"]


def test_the_input_is_never_the_output(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("keep me\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(rows)
    for given in (rows, link):
        with pytest.raises(TrainingInputError, match="is the input file"):
            with jsonl_output(str(given), [None, str(rows)]):
                pass
    assert rows.read_text() == "keep me\n"


def test_a_symlink_keeps_pointing_at_its_file_and_a_device_stays_a_device(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    with jsonl_output(str(link), []) as f:
        f.write("new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    with jsonl_output(os.devnull, []) as f:
        f.write("gone\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.parametrize("where, says", [("missing/o.jsonl", "No such file or directory"), (".", "Is a directory")])
def test_an_output_path_that_cannot_be_written_is_one_line(tmp_path, where, says):
    with pytest.raises(TrainingInputError, match=says) as err:
        with jsonl_output(str(tmp_path / where), []):
            pass
    assert "\n" not in str(err.value) and os.listdir(tmp_path) == []


def test_a_descriptor_path_is_written_through_the_descriptor_never_replaced(tmp_path):
    """/dev/stdout under a shell's `>> file` appends to the file (a temporary file renamed over it
    would drop its earlier lines), and under `| reader` writes to the pipe (it has no file to rename)."""
    appended = tmp_path / "app.jsonl"
    appended.write_text("earlier\n")
    with open(appended, "a") as shell:
        for path in (f"/proc/self/fd/{shell.fileno()}", f"/dev/fd/{shell.fileno()}"):
            with jsonl_output(path, []) as f:
                f.write("row\n")
    assert appended.read_text() == "earlier\nrow\nrow\n" and os.listdir(tmp_path) == ["app.jsonl"]
    read, write = os.pipe()
    try:
        with jsonl_output(f"/dev/fd/{write}", []) as f:
            f.write("piped\n")
        assert os.read(read, 100) == b"piped\n"
    finally:
        os.close(read)
        os.close(write)
    assert output_descriptor("/dev/stdout") == 1 and output_descriptor(str(appended)) is None
    assert summary_stream("/dev/stdout") is sys.stderr and summary_stream(None) is sys.stderr
    assert summary_stream(str(appended)) is sys.stdout
