"""Exact match on held-out prompts and the check of held-out prompts that are training prompts too
(training/exact_match.py): counted overall and per task, and the exact match on the others,
against a count by hand; any Unicode prompt keys the same way whatever its surrounding spaces."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.exact_match import exact_match, exact_match_rows, overlap_rows, prompt_key, training_prompts


def conv(prompt: str, answer: str, *earlier: str) -> list[dict]:
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(earlier)]
    return turns + [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


ANSWERS = {"What is 3 + 4?": "7", "What is 1 + 1?": "3", "Repeat: a b": "a b", "Repeat: c d": "x", "Which is larger, 5 or 9?": "9"}


def reply(context):
    return " " + ANSWERS[context[-1]["content"]] + "\n"  # stripped before the comparison


def test_held_out_prompts_in_the_training_file_are_counted_and_left_out_of_the_unseen_figure():
    train = [conv(" What is 3 + 4? ", "7"), conv("What is 1 + 1?", "2"), conv("Repeat: c d", "c d", "hi", "hello"),
             [{"role": "user", "content": "Repeat: a b"}]]  # no answer: all prompt
    held = [("add", conv("What is 3 + 4?", "7")), ("add", conv("What is 1 + 1?", "2")), ("repeat", conv("Repeat: a b", "a b")),
            ("repeat", conv("Repeat: c d", "c d")), ("larger", conv("Which is larger, 5 or 9?", "9"))]
    keys = training_prompts(train)
    assert len(keys) == 5 and prompt_key([{"role": "user", "content": "What is 3 + 4?"}]) in keys
    em = exact_match(torch.nn.Module(), None, held, 10, 4, answer=reply, train_prompts=keys)
    # in training: both adds and "Repeat: a b" (the prompt-only row); "Repeat: c d" was trained
    # (keys: the 3 one-turn prompts, and "hi" and "hi, hello, Repeat: c d" from the 2-answer row)
    # after two other turns, a different prompt; right: 3 + 4, Repeat: a b, larger
    assert em["n"] == 5 and em["exact_match"] == 3 / 5
    assert em["in_training"] == 3 and em["in_training_by_task"] == {"add": 2, "larger": 0, "repeat": 1}
    assert em["unseen"] == {"exact_match": 1 / 2, "n": 2}
    assert overlap_rows(em) == {"held-out prompts also among the training prompts": "3 of 5 (add 2, repeat 1)"}
    rows = exact_match_rows(em, "sft")
    assert rows["sft: the 2 prompts not among the training prompts"] == 0.5 and rows["sft: all tasks (5 prompts)"] == 0.6
    plain = exact_match(torch.nn.Module(), None, held, 10, 4, answer=reply)  # without training prompts: no overlap figures
    assert "unseen" not in plain and overlap_rows(plain) == {} and plain["exact_match"] == em["exact_match"]
    every = exact_match(torch.nn.Module(), None, held[:2], 10, 4, answer=reply, train_prompts=keys)
    assert every["unseen"] == {"exact_match": None, "n": 0}


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=30), st.text(" \t\n\u3000", max_size=3), st.text(" \t\n\u3000", max_size=3))
def test_a_prompt_keys_the_same_whatever_spaces_surround_it(text, before, after):
    padded = prompt_key([{"role": "user", "content": before + text + after}])
    assert padded == prompt_key([{"role": "user", "content": text.strip()}])
    assert padded != prompt_key([{"role": "system", "content": text}])


def test_a_held_out_prompt_answered_in_an_earlier_turn_of_a_training_conversation_is_in_training():
    # SFT's loss is on every assistant turn (llmdata/chat.py ChatTemplate.encode), so a multi-turn
    # training conversation teaches the reply to each of its prefixes, not only to the last one
    train = [conv("And 2 + 2?", "4", "What is 3 + 4?", "7")]
    keys = training_prompts(train)
    assert prompt_key([{"role": "user", "content": "What is 3 + 4?"}]) in keys
    held = [("add", conv("What is 3 + 4?", "7")), ("larger", conv("Which is larger, 5 or 9?", "9"))]
    em = exact_match(torch.nn.Module(), None, held, 10, 4, answer=reply, train_prompts=keys)
    assert em["in_training"] == 1 and em["unseen"] == {"exact_match": 1.0, "n": 1}
