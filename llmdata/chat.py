"""Alignment data: the formats people already have, one chat template, and label masks.

Rows are read from JSONL in any of these shapes:
- chat:              {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
- prompt/completion: {"prompt": str, "completion": str}
- Alpaca:            {"instruction": str, "input": str (optional), "output": str}
- preference pairs:  {"prompt": str | messages, "chosen": str | messages, "rejected": str | messages}
A row that fits none of them is a `BadRow` with its line number and reason, never an exception.

The chat template uses the tokenizer's reserved role tokens, so no text in the data can forge a
turn (special-token text inside content is encoded as ordinary text):

    <|system|>{content}<|end|><|user|>{content}<|end|><|assistant|>{content}<|end|>...<|endoftext|>

Training targets are the assistant turns' content and their closing <|end|>; every other label is
-100 unless `train_on_prompt` is set. Generation feeds the turns up to `<|assistant|>` and stops at
`<|end|>`. `ChatTemplate.jinja` is the same template for `apply_chat_template` (the HF export).
"""
from __future__ import annotations

import bz2
import codecs
import gzip
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Optional, Union

from llmdata.reasons import BadRowKind, bad_row_reason
from llmdata.records import json_value, lone_surrogates

ROLES = ("system", "user", "assistant")
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END, EOT = "<|end|>", "<|endoftext|>"

Message = dict[str, str]


@dataclass
class BadRow:
    """An unusable row: its line (from 1), why (`llmdata.reasons.bad_row_reason`, or the format
    error's message) and the first 200 characters of the line."""

    line: int
    reason: str
    raw: str


@dataclass
class Preference:
    prompt: list[Message]
    chosen: list[Message]  # the assistant turn(s) that follow the prompt
    rejected: list[Message]


def _messages(value, where: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} is neither text nor a non-empty list of messages")
    out = []
    for m in value:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}: each message needs a role in {ROLES} and string content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _answer(value, where: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    answer = [m for m in _messages(value, where) if m["role"] == "assistant"]
    if not answer:
        raise ValueError(f"{where} has no assistant turn (an answer given as messages is the assistant's)")
    return answer


def _alpaca_prompt(row: dict) -> str:
    """An Alpaca row's user turn: the instruction, then its input (if any) after a blank line."""
    if not isinstance(row["instruction"], str):
        raise ValueError("instruction is not a string")
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise ValueError("input is not a string")
    return row["instruction"] + ("\n\n" + extra if extra else "")


def _before_last_answer(msgs: list[Message], where: str) -> tuple[list[Message], Optional[str]]:
    """(the turns a model answers, the reference): a conversation ending with an assistant turn is
    answered from the turns before it, and that turn is the reference; any other is answered whole."""
    if msgs[-1]["role"] != "assistant":
        return msgs, None
    if len(msgs) == 1:
        raise ValueError(f"{where}: no turn before the assistant's answer")
    return msgs[:-1], msgs[-1]["content"] or None


def chat_prompt(row: dict) -> tuple[list[Message], Optional[str]]:
    """The turns a chat model is to answer for one row of any format `to_conversation` reads, and
    the row's reference answer (None when it has none), read in `to_conversation`'s order:
    "messages", then Alpaca, then "prompt". A "messages" conversation (or a "prompt" list without a
    "completion") that ends with an assistant turn is answered from the turns before it, and that
    turn is the reference; one that ends with another role is answered as it stands. {"prompt",
    "completion"?} and Alpaca rows {"instruction", "input"?, "output"?}: the prompt or instruction
    (+ input) is the user turn, the completion or output the reference. Raises ValueError naming
    what is wrong (a completion or output that is not text included)."""
    if "messages" in row:
        return _before_last_answer(_messages(row["messages"], "messages"), "messages")
    if "instruction" in row:
        prompt = _alpaca_prompt(row)
        output = row.get("output")
        if output is not None and not isinstance(output, str):
            raise ValueError("output is not a string")
        return [{"role": "user", "content": prompt}], output or None
    if "prompt" in row:
        msgs = _messages(row["prompt"], "prompt")
        if row.get("completion") is None:
            return _before_last_answer(msgs, "prompt")
        return msgs, _answer(row["completion"], "completion")[-1]["content"] or None
    raise ValueError('no "prompt", "messages" or Alpaca "instruction" to answer')


def to_conversation(row: dict) -> list[Message]:
    """A supervised row as messages; raises ValueError naming what is wrong."""
    if "messages" in row:
        msgs = _messages(row["messages"], "messages")
    elif "instruction" in row and "output" in row:
        prompt = _alpaca_prompt(row)
        if not isinstance(row["output"], str):
            raise ValueError("output is not a string")
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]
    elif "prompt" in row and "completion" in row:
        msgs = _messages(row["prompt"], "prompt") + _answer(row["completion"], "completion")
    else:
        raise ValueError("not a chat, prompt/completion or Alpaca row")
    if not any(m["role"] == "assistant" and has_text(m["content"]) for m in msgs):
        raise ValueError("no non-empty assistant turn to learn from")
    return msgs


def scoring_row(row: dict) -> tuple[list[Message], dict[str, list[Message]]]:
    """A row a reward model scores: (its prompt turns, {key: answer turns} for each of "response",
    "chosen" and "rejected" it has), each text or messages as in a preference row. Raises
    ValueError naming what is wrong (no prompt, no answer, a value that is neither)."""
    if "prompt" not in row:
        raise ValueError("missing 'prompt'")
    keys = [k for k in ("response", "chosen", "rejected") if k in row]
    if not keys:
        raise ValueError("needs a 'response', or 'chosen' and 'rejected'")
    return _messages(row["prompt"], "prompt"), {k: _answer(row[k], k) for k in keys}


def to_preference(row: dict) -> Preference:
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise ValueError(f"missing {key!r}")
    pref = Preference(_messages(row["prompt"], "prompt"), _answer(row["chosen"], "chosen"), _answer(row["rejected"], "rejected"))
    if pref.chosen == pref.rejected:
        raise ValueError("chosen and rejected are the same")
    return pref


def read_objects(path: str) -> Iterator[Union[tuple[int, dict, str], BadRow]]:
    """(line number, object, text) for each JSON-object line of a JSONL file, and a BadRow for each
    line that is not UTF-8, not JSON, or not an object. Blank lines are skipped. Every reader of
    user rows goes through here, so a broken line is reported the same way by every command. The
    JSON is decoded as the clean stage decodes records (llmdata.records `json_value`: too deep a
    nesting or too long an integer is a bad row, a UTF-8 byte order mark leading a line is ignored),
    and a row holding an escaped lone surrogate is a bad row ("invalid Unicode"): no text can hold
    it, and it would fail wherever the row is encoded or written. A file named .gz or .bz2 is
    decompressed; one that breaks off (truncated, corrupt) ends with one bad row for the rest
    ("unreadable file: after line N: ..."), as the clean stage quarantines such a shard's rest."""
    compressed = path.lower().endswith((".gz", ".bz2"))
    n = 0
    with (gzip.open(path, "rb") if path.lower().endswith(".gz") else
          bz2.open(path, "rb") if compressed else open(path, "rb")) as f:
        lines = enumerate(f, start=1)
        while True:
            try:
                n, raw = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as err:  # the stream breaks off: the rest is one bad row
                if not compressed:
                    raise
                detail = f"after line {n}: {type(err).__name__}: {err}".splitlines()[0][:300]
                yield BadRow(n + 1, bad_row_reason(BadRowKind.UNREADABLE_FILE, detail), "")
                return
            row = _line_object(n, raw)
            if row is not None:
                yield row


def _line_object(n: int, raw: bytes) -> Union[tuple[int, dict, str], BadRow, None]:
    """`read_objects`' item for line `n` (None for a blank line)."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return BadRow(n, bad_row_reason(BadRowKind.INVALID_UTF8, str(err.start)), raw[:200].decode("utf-8", "replace"))
    row, why = json_value(text)
    if why is not None:
        return BadRow(n, bad_row_reason(BadRowKind.INVALID_JSON, why), text[:200])
    if not isinstance(row, dict):
        return BadRow(n, bad_row_reason(BadRowKind.NOT_AN_OBJECT, type(row).__name__), text[:200])
    if lone_surrogates(raw, row):
        return BadRow(n, bad_row_reason(BadRowKind.INVALID_UNICODE, "unpaired surrogate escape (\\ud800-\\udfff)"),
                      text[:200])
    return n, row, text


class ParsedRow(NamedTuple):
    """A usable row of a JSONL file: its line number, the object, what it parsed to (the
    conversation, or a Preference) and the line's text (for a bad-row entry a later check makes)."""
    line: int
    row: dict
    parsed: Union[list[Message], Preference]
    text: str


def read_rows(path: str, kind: str) -> Iterator[Union[ParsedRow, BadRow]]:
    """A ParsedRow (its conversation for kind "sft", its Preference for kind "preference") for each
    usable line of a JSONL file, and a BadRow for each line that is not UTF-8, not JSON, not an
    object, or not the format."""
    parse = to_conversation if kind == "sft" else to_preference
    for item in read_objects(path):
        if isinstance(item, BadRow):
            yield item
            continue
        n, row, text = item
        try:
            parsed = parse(row)
        except ValueError as err:
            yield BadRow(n, str(err), text[:200])
            continue
        yield ParsedRow(n, row, parsed, text)


class ChatTemplate:
    """Token ids of conversations under the template above, with their training mask."""

    def __init__(self, tokenizer, train_on_prompt: bool = False):
        self.tok = tokenizer
        self.train_on_prompt = train_on_prompt
        self.role_ids = {role: tokenizer.special_ids[t] for role, t in ROLE_TOKENS.items()}
        self.end_id = tokenizer.special_ids[END]
        self.eot_id = tokenizer.special_ids[EOT]

    def encode(self, messages: list[Message], eot: bool = True) -> tuple[list[int], list[bool]]:
        """Ids, and for each id whether it is a training target."""
        ids: list[int] = []
        mask: list[bool] = []
        for m in messages:
            body = self.tok.encode(m["content"]) + [self.end_id]
            target = m["role"] == "assistant" or self.train_on_prompt
            ids += [self.role_ids[m["role"]]] + body
            mask += [self.train_on_prompt] + [target] * len(body)
        if eot:
            ids.append(self.eot_id)
            mask.append(self.train_on_prompt)
        return ids, mask

    def prompt(self, messages: list[Message]) -> list[int]:
        """The ids a model continues to answer: the turns, then the assistant's role token."""
        ids, _ = self.encode(messages, eot=False)
        return ids + [self.role_ids["assistant"]]

    def jinja(self) -> str:
        """The template as Jinja for `tokenizer.apply_chat_template`, giving exactly `encode`'s ids
        for a whole conversation (it ends with <|endoftext|>) and `prompt`'s ids with
        `add_generation_prompt=True`. A Jinja template renders text that the HF tokenizer then
        reads, so reserved-token text inside a message would become a real token there (a forged
        turn) while `encode` keeps it as ordinary text: the template raises on such a message
        instead of silently giving other ids (docs/export.md shows how to encode it exactly)."""
        reserved = ", ".join(repr(t) for t in self.tok.special_ids)
        roles = ", ".join(f"{r!r}: {t!r}" for r, t in ROLE_TOKENS.items())
        return ("{%- set roles = {" + roles + "} -%}"
                "{%- for m in messages -%}"
                "{%- if m['role'] not in roles -%}"
                "{{ raise_exception('llmpipe chat template: role ' ~ m['role'] ~ ' is none of system, user, assistant') }}"
                "{%- endif -%}"
                "{%- if m['content'] is not string -%}"
                "{{ raise_exception('llmpipe chat template: message content must be a string') }}"
                "{%- endif -%}"
                "{%- for t in [" + reserved + "] -%}{%- if t in m['content'] -%}"
                "{{ raise_exception('llmpipe chat template: a message holds the reserved token text ' ~ t ~ ', which llmpipe "
                "encodes as ordinary text and a chat template cannot; encode each message with split_special_tokens=True "
                "(docs/export.md)') }}"
                "{%- endif -%}{%- endfor -%}"
                "{{ roles[m['role']] + m['content'] + '" + END + "' }}"
                "{%- endfor -%}"
                "{%- if add_generation_prompt -%}{{ '" + ROLE_TOKENS["assistant"] + "' }}"
                "{%- else -%}{{ '" + EOT + "' }}{%- endif -%}")

    def to_json(self) -> dict:
        """Stored beside a checkpoint: enough to rebuild prompts without this code."""
        return {"format": "llmpipe-chat-v1", "roles": ROLE_TOKENS, "end": END, "eos": EOT,
                "turn": "{role_token}{content}{end}", "generation_prompt": ROLE_TOKENS["assistant"],
                "conversation_end": EOT,
                "targets": "assistant content and its end token" + (" (and the prompt)" if self.train_on_prompt else ""),
                "jinja": self.jinja()}


def inputs_and_labels(ids: list[int], mask: list[bool]) -> tuple[list[int], list[int]]:
    """Next-token pairs: input ids[:-1], label ids[1:] where the label is a target, else -100."""
    return ids[:-1], [t if m else -100 for t, m in zip(ids[1:], mask[1:])]


def prompt_and_reference(messages: list[Message]) -> tuple[list[Message], Optional[str]]:
    """The messages before the last assistant turn, and that turn's content (the reference answer)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        return messages, None
    return messages[:last], messages[last]["content"]


#: what a text can hold and still say nothing: control and format characters (zero-width spaces and
#: joiners, a byte order mark, bidi marks) and separators (every Unicode space, line and paragraph)
_INVISIBLE = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))


def has_text(content: str) -> bool:
    """Whether `content` holds a character a reader sees (not only spaces, zero-width or control characters)."""
    return any(unicodedata.category(ch) not in _INVISIBLE for ch in content)


def unaskable(messages: list[Message]) -> Optional[str]:
    """Why a conversation cannot be asked as a question with a reference answer (a held-out prompt,
    an RL prompt): its turns before the last assistant turn hold no text besides earlier answers (a
    model would be scored on answering nothing), it ends with another turn than the assistant's
    (asking the turns before the last answer would drop the last question), or that answer is
    blank (nothing to check against). None when it can be asked."""
    context, reference = prompt_and_reference(messages)
    if not any(has_text(m["content"]) for m in context if m["role"] != "assistant"):
        return "no prompt to ask: no text before the assistant's answer"
    if messages[-1]["role"] != "assistant":
        return f"ends with a {messages[-1]['role']} turn, not the assistant's answer to check against"
    if not has_text(reference or ""):
        return "the assistant's answer to check against is blank"
    return None


def question_row(item: Union[ParsedRow, BadRow]) -> Union[ParsedRow, BadRow]:
    """`item` (a `read_rows(path, "sft")` item) as a question to ask: a BadRow with the reason
    when it is a conversation with nothing to ask (`unaskable`), else unchanged."""
    if isinstance(item, BadRow):
        return item
    reason = unaskable(item.parsed)
    return BadRow(item.line, reason, item.text[:200]) if reason else item
