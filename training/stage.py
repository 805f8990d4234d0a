"""What every training stage does around its training: check its inputs, fingerprint them,
keep or clear its folder (and checkpoints), and carry the tokenizer along with the weights."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, TextIO

from llmdata.errors import LlmpipeError
from llmdata.reasons import BadRowKind
from pipelines.manifest import MANIFEST, PREVIOUS, input_fingerprint, is_complete, read_manifest

FINGERPRINT_FILE = "fingerprint"


class TrainingInputError(LlmpipeError, ValueError):
    """The stage's input folders are missing or unusable (one line for the CLI)."""


class TrainingDiverged(LlmpipeError):
    """A run whose loss or gradients went non-finite: every step skipped, or one applied to the
    weights (one line for the CLI)."""


class StageInterrupted(Exception):
    """A training stage checkpointed and stopped on a signal (a scheduler's preemption or time
    limit); the CLI says so in one line and exits with 128 + the signal's number, as the shell does."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


def folder_fingerprint(folder: str) -> dict:
    """An upstream stage folder stands for its manifest; any other folder for its files."""
    return input_fingerprint(folder if read_manifest(folder) else os.path.join(folder, "*"))


_DATA_NAMES = {"train": "training", "heldout": "held-out"}


def model_stage_inputs(stage: str, base_dir: str, files: dict[str, Optional[str]]) -> dict:
    """What a stage that starts from a model folder reads: the folder and each data file given
    (None = not used), each checked to exist (a one-line error) and fingerprinted for the manifest."""
    require(os.path.join(base_dir, "model.safetensors"), "base model (model.safetensors)")
    inputs = {"base": folder_fingerprint(base_dir)}
    for key, path in files.items():
        if path:
            require(path, f"{stage} {_DATA_NAMES.get(key, key)} data")
            inputs[key] = input_fingerprint(path)
    return inputs


def require_usable_rows(what: str, source: str, rows: int, bad: int, first_error: Optional[str] = None) -> None:
    """After a command wrote one output row per input row: TrainingInputError (one line, exit 2)
    when `source` held no rows, or when every row was an error row (nothing was done; the message
    quotes `first_error`, the first row's). Call it inside `jsonl_output`, so that a file output
    is then not written and an earlier one stays."""
    if rows == 0:
        raise TrainingInputError(f"{what}: {source} holds no rows")
    if bad == rows:
        first = f": {' '.join(first_error.split())[:300]}" if first_error else ""
        raise TrainingInputError(f"{what}: none of the {rows} rows of {source} could be used (the first{first})")


def output_descriptor(path: str) -> Optional[int]:
    """The file descriptor of this process that `path` names through its symlinks (/dev/stdout ->
    /proc/self/fd/1, /dev/fd/2, /proc/<our pid>/fd/N), or None for any other path."""
    here = os.path.abspath(path)
    for _ in range(40):  # as many symlinks as the kernel follows
        here = os.path.join(os.path.realpath(os.path.dirname(here)), os.path.basename(here))
        found = re.fullmatch(r"/proc/(\d+)/fd/(\d+)", here)
        if found and int(found.group(1)) == os.getpid():
            return int(found.group(2))
        if not os.path.islink(here):
            return None
        here = os.path.join(os.path.dirname(here), os.readlink(here))
    return None


def summary_stream(path: Optional[str]) -> TextIO:
    """Where a command's summary line goes: stdout beside a file `--output`, stderr when the rows
    themselves go to stdout (None, /dev/stdout), so that stream holds JSON lines only."""
    return sys.stderr if path is None or output_descriptor(path) == 1 else sys.stdout


@contextmanager
def jsonl_output(path: Optional[str], inputs: list[Optional[str]]) -> Iterator[TextIO]:
    """Where a command writes its JSON lines: stdout when `path` is None, else a temporary file
    beside `path` (beside the file a symlink names) that becomes it when the block ends without
    an exception, so an interrupted or failed run (a TrainingInputError such as
    `require_usable_rows`' too) leaves an earlier file at `path` whole. Written directly instead:
    a path that names one of this process's descriptors (/dev/stdout, /dev/fd/N: written through
    the descriptor, so a shell's `>> file` appends and a pipe gets the rows) and one that exists
    and is no regular file (/dev/null, a named pipe). Raises TrainingInputError before anything
    is opened when `path` is one of `inputs` (the input would be replaced by the output), is a
    folder, or cannot be opened."""
    if path is None:
        yield sys.stdout
        return
    for source in inputs:
        if source and os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source):
            raise TrainingInputError(f"--output {path} is the input file {source}: give another path")
    if os.path.isdir(path):
        raise TrainingInputError(f"--output {path}: Is a directory")
    descriptor = output_descriptor(path)
    target = os.path.realpath(path)  # through a symlink: replace the file it names, not the link
    special = descriptor is not None or (os.path.exists(path) and not os.path.isfile(path))
    tmp = path if special else f"{target}.tmp-{os.getpid()}"
    try:
        if descriptor is not None:
            sys.stdout.flush()  # anything printed before comes first
            out = os.fdopen(os.dup(descriptor), "w", encoding="utf-8")
        else:
            out = open(tmp, "w", encoding="utf-8")
    except OSError as err:  # a missing folder, no permission, a closed descriptor: about the path the user gave
        raise TrainingInputError(f"--output {path}: {err.strerror or type(err).__name__}") from None
    if special:
        with out:
            yield out
        return
    publish = False
    try:
        yield out
        publish = True
    finally:
        try:
            out.close()  # a full disk may only say so here
        except OSError:
            publish = False
            raise
        finally:
            if publish:
                os.replace(tmp, target)
            elif os.path.exists(tmp):
                os.unlink(tmp)


def require(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise TrainingInputError(f"{what} not found: {path}")


def check_output_folder(stage: str, out: str, inputs: dict) -> None:
    """Refuse (TrainingInputError, one line) an output folder this stage would destroy: one that
    holds another stage's finished output (its manifest names that stage), or one that holds any
    of this stage's inputs (`inputs`: the stage's fingerprints, each with the `pattern` it read),
    such as `--output runs/demo/06-sft` with `--base runs/demo/06-sft/final`, or whose `.previous`
    folder (where a finished run waits, deleted once the new one finishes) holds one."""
    manifest = read_manifest(out) if os.path.isdir(out) else None
    if manifest and manifest.get("stage") not in (None, stage):
        raise TrainingInputError(f"output {out} holds the {manifest['stage']} stage's output; choose another --output")
    folder = os.path.realpath(out)
    for name, fingerprint in inputs.items():
        path = os.path.realpath(fingerprint["pattern"].removesuffix(os.sep + "*"))
        # the folder, and the finished run a new one sets aside beside it (deleted when it finishes)
        if any(path == f or path.startswith(f + os.sep) for f in (folder, folder + PREVIOUS)):
            raise TrainingInputError(f"output {out} would delete this stage's {name} input ({fingerprint['pattern']}); "
                                     "choose another --output")


def start_stage(stage: str, out: str, fingerprint: str, force: bool, log: Callable[[str], None]) -> tuple[int, Callable[[str], None]]:
    """Join the ranks and keep or clear the stage folder: (rank, a logger that speaks on rank 0).

    Called once the stage's inputs are read and checked, so that a wrong input (another
    tokenizer, a typo in a path) is a one-line error that has cleared no checkpoints."""
    import torch.distributed as dist

    from training.engine import setup_distributed

    setup_distributed()
    rank = dist.get_rank()
    say = log if rank == 0 else (lambda _m: None)
    prepare_output(stage, out, fingerprint, force, rank, say)
    return rank, say


def prepare_output(stage: str, out: str, fingerprint: str, force: bool, rank: int, log: Callable[[str], None]) -> None:
    """Keep the stage folder (and its checkpoints) only when they belong to this exact config and
    input; otherwise start clean. Every rank waits for rank 0 to decide."""
    import torch.distributed as dist

    if os.path.isfile(out) or (os.path.isdir(out) and os.listdir(out) and not any(
            os.path.exists(os.path.join(out, name)) for name in (MANIFEST, "checkpoints"))):
        raise TrainingInputError(f"output {out} holds files that are not a {stage} stage's output; choose another "
                                 "--output or empty it")
    if rank == 0:
        marker = os.path.join(out, "checkpoints", FINGERPRINT_FILE)
        previous = open(marker, encoding="utf-8").read().strip() if os.path.exists(marker) else None
        if force or previous != fingerprint:
            if previous is not None:
                log(f"{stage}: config or input changed since the checkpoints were written; starting over"
                    if not force else f"{stage}: --force: starting over")
            finished_before = read_manifest(out)
            if finished_before and finished_before.get("status") == "complete":
                # a finished run is not destroyed by one that may not finish: it waits beside the
                # stage folder until this run writes its manifest (manifest.write_manifest)
                shutil.rmtree(out + PREVIOUS, ignore_errors=True)
                os.replace(out, out + PREVIOUS)
                log(f"{stage}: the finished run in {out} is kept in {out + PREVIOUS} until this one finishes")
            shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
        with open(marker, "w", encoding="utf-8") as f:
            f.write(fingerprint)
    dist.barrier()


def complete_model_dir(tokenizer_dir: str, dest: str, chat_template: Optional[dict] = None) -> None:
    """Make a folder of final weights self-contained: the tokenizer beside them, and the chat
    template the model was tuned on (given, or carried over from `tokenizer_dir`)."""
    for name in ("tokenizer.json", "llmpipe_tokenizer.json", "vocab.json", "merges.txt", "chat_template.json"):
        src = os.path.join(tokenizer_dir, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(dest, name))
    if chat_template is not None:
        with open(os.path.join(dest, "chat_template.json"), "w", encoding="utf-8") as f:
            json.dump(chat_template, f, indent=2)


def finished(stage: str, out: str, fingerprint: str, force: bool, log: Callable[[str], None]) -> Optional[dict]:
    """The stage's manifest when it already completed with this fingerprint (the stage is skipped)."""
    if force or not is_complete(out, fingerprint):
        return None
    log(f"{stage}: up to date in {out} (use --force to rerun)")
    return read_manifest(out)


def write_bad_rows(out: str, sources: list[tuple[Optional[str], list]]) -> dict[str, int]:
    """bad_rows.jsonl (file, line, reason, raw) of the rows a stage could not use, for each
    (file, its BadRows) of `sources` in order; the counts of the first file's by kind of reason
    (`bad_row_kind`)."""
    with open(os.path.join(out, "bad_rows.jsonl"), "w", encoding="utf-8") as f:
        for source, bad in sources:
            for b in bad:
                f.write(json.dumps({"file": source, "line": b.line, "reason": b.reason, "raw": b.raw}) + "\n")
    return dict(sorted(Counter(bad_row_kind(b.reason) for b in sources[0][1]).items()) if sources else [])


def bad_row_kind(reason: str) -> str:
    """What a bad row's reason counts under: the kind for the reasons whose detail varies by row
    ("invalid JSON: Expecting value: column 5" and "invalid UTF-8 at byte 7" count as "invalid JSON"
    and "invalid UTF-8"; llmdata.reasons BadRowKind), else the whole reason ("messages: each message
    needs a role in ... and string content")."""
    kind = next((k for k in (BadRowKind.INVALID_UTF8, BadRowKind.INVALID_JSON, BadRowKind.INVALID_UNICODE,
                             BadRowKind.UNREADABLE_FILE)
                 if reason.startswith(k)), None)
    return kind or reason
