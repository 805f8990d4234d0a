"""Reports show user text (prompts, answers, samples) without letting it act on a terminal or
break a table: control, bidi and zero-width characters become escapes, ZWJ/ZWNJ stay."""
import re

from hypothesis import given
from hypothesis import strategies as st

from llmdata.display import shown, table_cell
from pipelines.run_report import Section, to_html, to_markdown

HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


@given(st.text())
def test_shown_text_has_no_hidden_characters(text):
    out = shown(text)
    assert not HIDDEN.search(out)
    assert out.count("\n") == text.count("\n")
    one = shown(text, one_line=True)
    assert "\n" not in one and "\r" not in one and "\t" not in one and not HIDDEN.search(one)


@given(st.text())
def test_table_cell_is_one_cell(text):
    cell = table_cell(text)
    assert "\n" not in cell and not re.search(r"(?<!\\)\|", cell)


def test_escapes_are_readable_and_spelling_marks_stay():
    assert shown("red \x1b[31mtext\x07") == "red \\x1b[31mtext\\x07"
    assert shown("\u202eevil\u200b") == "\\u202eevil\\u200b"
    assert shown("می\u200cخواهم 👩\u200d💻") == "می\u200cخواهم 👩\u200d💻"
    assert shown("a\nb\tc", one_line=True) == "a\\nb\\tc"


def test_run_report_escapes_user_text_in_every_block():
    sec = Section("s").p("para \x1b[2J").table(["k", "v"], [["a|b", "x\ny\x00"]]).pre("line1\nline2 \u202e")
    md, _ = to_markdown("t", [sec], "files")
    assert "\x1b" not in md and "\x00" not in md and "\u202e" not in md
    assert "| a\\|b | x\\ny\\x00 |" in md and "line1\nline2 \\u202e" in md
    page = to_html("t", [sec])
    assert "\x1b" not in page and "\u202e" not in page and "x\ny\\x00" in page


def test_training_report_table_shows_none_as_na_and_escapes_strings():
    from training.report import table

    lines = table({"validation loss": None, "prompt": "what\x1b[0m | is\nit"})
    assert "| validation loss | n/a |" in lines
    assert "| prompt | what\\x1b[0m \\| is\\nit |" in lines


def test_training_report_escapes_user_text_in_row_labels():
    """Exact-match rows are labelled by the data's task names: they are user text too."""
    from training.report import table

    lines = table({"base model: t0|\x1b[31mred\nx": 0.5})
    assert lines[2] == "| base model: t0\\|\\x1b[31mred\\nx | 0.5 |"
