"""training/stage.py `jsonl_output`: where `generate` and `reward score` write their JSON lines. An
output is written whole or not at all, never over its own input, and never replaces a device or a
symlink with a regular file."""
import os
import stat

import pytest

from training.stage import TrainingInputError, jsonl_output, require_usable_rows


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
