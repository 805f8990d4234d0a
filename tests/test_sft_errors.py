"""bench/sft_errors.py's classification of wrong demo answers, on hand-made cases."""
import random

import pytest

from bench.sft_errors import error_kind, parse_task
from llmdata.sample_tasks import TASKS, make_task


def test_parse_task_reads_every_demo_prompt():
    rng = random.Random(0)
    for kind in TASKS * 20:
        task = make_task(rng, kind)
        assert parse_task(task.prompt) == (kind, tuple(task.operands))


@pytest.mark.parametrize("task, operands, reference, answer, kind", [
    ("reverse", ("a", "b", "c"), "c b a", "a b c", "not reversed"),
    ("sort", ("c", "a", "b"), "a b c", "c a b", "not sorted"),
    ("repeat", ("a", "b", "c"), "a b c", "a c b", "adjacent swap"),
    ("repeat", ("a", "b", "c"), "a b c", "a x c", "one word replaced by a word not in the prompt"),
    ("repeat", ("a", "b", "c"), "a b c", "a a c", "one word replaced by another of the prompt's words"),
    ("sort", ("c", "a", "b"), "a b c", "x y c", "2+ positions wrong with a word not in the prompt"),
    ("sort", ("c", "a", "b"), "a b c", "b c a", "2+ positions wrong with only the prompt's words"),
    ("repeat", ("a", "b", "c"), "a b c", "a b", "other"),
    ("add", (3, 1), "4", "3", "one operand"),  # also sum - 1: the operand comes first
    ("add", (3, 4), "7", "8", "+1"),
    ("add", (3, 4), "7", "5", "-2"),
    ("add", (3, 4), "7", "12", "+-3..9"),
    ("add", (3, 4), "7", "seven", "not a number"),
    ("larger", (42, 17), "42", "17", "the smaller"),
    ("larger", (42, 17), "42", "45", "neither operand: within 5 of the larger"),
    ("larger", (42, 17), "42", "49", "neither operand: same tens digit"),
    ("larger", (42, 17), "42", "88", "neither operand: other"),
])
def test_error_kinds(task, operands, reference, answer, kind):
    assert error_kind(task, operands, reference, answer) == kind


def test_a_right_answer_has_no_error_kind():
    with pytest.raises(ValueError):
        error_kind("add", (1, 2), "3", " 3")
