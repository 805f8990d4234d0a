"""`llmpipe`: the stage-by-stage command line.

    llmpipe sample-data --output data/demo
    llmpipe clean --config configs/pipeline.yaml --run-name demo
    llmpipe clean --input 'data/*.jsonl.gz' --output out/clean -- --runner=DataflowRunner ...
    llmpipe run --config configs/pipeline.yaml

Arguments after a lone `--` are Beam pipeline options, passed through untouched. Every known
failure (bad config, missing input, a bad record under a `fail` policy) is one line on stderr and
exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import math
import os
import signal
import sys
import time
from typing import Callable, Optional


class _QuietOptionalBeamImports(logging.Filter):
    """Beam logs at import time that the GCP client libraries are missing; without the `gcp`
    extra that is expected and says nothing about the user's data."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_QuietOptionalBeamImports())

from llmdata.errors import LlmpipeError, error_names  # noqa: E402  (after the filter)
from pipelines.config import ConfigError, PipelineConfig, load_config  # noqa: E402
from pipelines.runner import resolve_beam_args  # noqa: E402

EXIT_USAGE = 2


def _split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="local runner worker processes (multi_processing); ignored with another --runner")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="pipeline YAML (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set clean.outliers.iqr_k=2.5 (repeatable)")
    parser.add_argument("--run-name", default=None, help="run folder name under run.root (default: run.name)")
    parser.add_argument("--force", action="store_true", help="rerun even when the stage's manifest is up to date")


def _load(args: argparse.Namespace) -> PipelineConfig:
    overrides = list(args.overrides)
    if args.run_name is not None:  # "" too: validation says a name needs a character
        overrides.append(f"run.name={args.run_name}")
    return load_config(args.config, overrides)


def cmd_sample_data(args: argparse.Namespace, _beam: list[str]) -> int:
    from llmdata.sample_data import write_corpus
    from pipelines import fs
    from pipelines.manifest import MANIFEST, is_complete, stage_fingerprint, write_manifest

    cfg = _load(args)
    sd = cfg.sample_data
    output = args.output or sd.output
    seed = sd.seed if args.seed is None else args.seed
    shards = args.shards or sd.shards
    max_docs = args.max_docs or sd.max_docs
    params = {"seed": seed, "shards": shards, "max_docs": max_docs, "python": sys.version.split()[0], "tasks": 2}
    fingerprint = stage_fingerprint("sample-data", params, {})
    if not args.force and is_complete(output, fingerprint):
        print(f"sample-data: up to date in {output}")
        return 0
    summary = write_corpus(output, seed=seed, shards=shards, max_docs=max_docs)
    from llmdata.sample_tasks import write_tasks

    tasks = write_tasks(output, seed=seed)
    write_manifest(output, "sample-data", fingerprint, params, {}, {"lines": summary["lines"]}, {},
                   {"shards": "shard-*.jsonl.gz", "labels": "labels.jsonl"}, {"planted": summary})
    bad = sum(v for k, v in summary.items() if k.startswith("bad:"))
    junk = sum(v for k, v in summary.items() if k.startswith("junk:"))
    print(f"sample-data: {summary['lines']} lines in {shards} shards ({summary['good']} good documents, "
          f"{summary.get('good:exact_dup', 0)} exact and {summary.get('good:near_dup', 0)} near duplicates, "
          f"{junk} junk, {bad} bad records) -> {output}; alignment tasks: {tasks['train']} + {tasks['heldout']} held-out "
          f"conversations and preference pairs in {output}/sft and {output}/preferences; see {fs.join(output, MANIFEST)}")
    return 0


def cmd_stage(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Any stage of the registry (pipelines/registry.py): its input from the command line, the
    config, or the stage before it in the run folder. Several ranks (--nproc N) relaunch the same
    command under the deepspeed launcher."""
    from pipelines.registry import StageCall, spec, stage_dir

    stage = spec(args.command)
    action = stage.actions.get(getattr(args, "action", None) or "")
    if stage.kind == "train" and beam_args:
        raise ConfigError(f"{stage.name} is a training stage: it takes no Beam options (got {' '.join(beam_args)})")
    if stage.kind == "train" and not action and _launcher_needed(args):
        return _relaunch(args.nproc, sys.argv[1:])
    cfg = _load(args)
    beam = resolve_beam_args(beam_args, args.workers) if stage.kind == "data" else []
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "config", "overrides", "force")}
    call = StageCall(cfg, args.output or stage_dir(cfg, stage.name), args.force, beam, given)
    if action:  # another use of the stage's output (`llmpipe reward score`): the output is the action's
        call.out = args.output
        return action.run(call)
    stage.run(call)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _relaunch(nproc: int, argv: list[str]) -> int:
    """The same command under the `deepspeed` launcher with `nproc` local ranks."""
    import shutil
    import subprocess

    launcher = shutil.which("deepspeed") or os.path.join(os.path.dirname(sys.executable), "deepspeed")
    rest, skip = [], False
    for a in argv:  # drop --nproc N / --nproc=N
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [launcher, "--num_accelerators", str(nproc), "--master_port", str(_free_port()), "--no_local_rank",
           "--module", "pipelines.cli", *rest]
    print("launching: " + " ".join(cmd), flush=True)
    # The launcher and its ranks get their own process group, and a signal to this process goes to
    # all of them: the local `deepspeed` runner dies on SIGTERM without passing it on, which would
    # leave the ranks training on, orphaned. The ranks checkpoint and stop (training/loop.py), and
    # this process waits for them before it returns.
    proc = subprocess.Popen(cmd, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    try:
        code = proc.wait()
        while _group_alive(proc.pid):
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received else code


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies, which nobody may reap inside a
    container, do not count)."""
    import psutil

    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                return True
    return False


def _launcher_needed(args: argparse.Namespace) -> bool:
    """Several ranks asked for, and not yet running under the deepspeed launcher."""
    return bool(args.nproc and args.nproc > 1 and "LOCAL_RANK" not in os.environ)


def cmd_lora_merge(args: argparse.Namespace, _beam: list[str]) -> int:
    """Fold a PEFT-layout adapter into its base model's weights."""
    from training.export import load_model, save_model
    from training.lora import load_adapter_into, merge_lora
    from training.stage import complete_model_dir, require

    require(os.path.join(args.base, "model.safetensors"), "base model (model.safetensors)")
    require(os.path.join(args.adapter, "adapter_config.json"), "adapter (adapter_config.json)")
    model = merge_lora(load_adapter_into(load_model(args.base), args.adapter))
    save_model(args.output, model.state_dict(), model.cfg)
    complete_model_dir(args.base, args.output)
    print(f"lora-merge: {args.adapter} folded into {args.base} -> {args.output}/model.safetensors")
    return 0


def cmd_export(args: argparse.Namespace, _beam: list[str]) -> int:
    """A model folder in Hugging Face's layout (transformers' from_pretrained, PEFT)."""
    from training.hf_export import export_hf

    export_hf(args.model, args.output)
    print(f"export: {args.model} -> {args.output} (Hugging Face layout: config.json, model.safetensors, tokenizer)")
    return 0


def _in_range(cast: Callable, what: str, low: float, high: float = math.inf, low_inclusive: bool = True) -> Callable:
    """An argparse type: `cast`, then a clear usage error outside [low, high] (or (low, high])."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value >= low if low_inclusive else value > low) or value > high:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    return parse


_positive_int = _in_range(int, "a whole number of at least 1", 1)
_non_negative_float = _in_range(float, "a number of at least 0", 0.0)
_seed = _in_range(int, "a seed from 0 to 2**63 - 1", 0, 2 ** 63 - 1)
_positive_float = _in_range(float, "a number above 0", 0.0, low_inclusive=False)
_probability = _in_range(float, "a probability in (0, 1]", 0.0, 1.0, low_inclusive=False)


def _json_line(row: dict) -> str:
    """One JSON line, readable in any script, that no line splitter breaks: JSON leaves U+0085,
    U+2028 and U+2029 raw inside strings, and Python's splitlines() (and some editors) cut there."""
    import json

    text = json.dumps(row, ensure_ascii=False, allow_nan=False)  # NaN / Infinity are not JSON: a bug, not a row
    return text.replace("\u0085", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"


def cmd_generate(args: argparse.Namespace, _beam: list[str]) -> int:
    """Continue prompts (or answer them, --chat) with a trained model: one JSON line per prompt."""
    import json

    import torch

    from llmdata.chat import BadRow, ChatTemplate, chat_prompt, read_objects
    from llmdata.tokenizer_io import BPETokenizer
    from training.export import load_model
    from training.best_of_n import best_of_n, load_matching_reward_model
    from training.generate import Sampling, chat_reply, continuation, inference_device
    from training.options import MAX_BEST_OF
    from training.stage import TrainingInputError, jsonl_output, require, require_usable_rows, summary_stream

    if not args.prompt and not args.input:
        raise TrainingInputError("generate needs --prompt TEXT (repeatable) or --input FILE.jsonl of {\"prompt\": ...} rows")
    require(os.path.join(args.model, "llmpipe_tokenizer.json"), "tokenizer beside the model (llmpipe_tokenizer.json)")
    if args.input:
        require(args.input, "input")
    if args.best_of is not None and (args.reward_model is None or not args.chat):
        raise TrainingInputError("--best-of N scores chat answers: it needs --chat and --reward-model DIR")
    if args.reward_model is not None and args.best_of is None:
        raise TrainingInputError("--reward-model is used by --best-of N; give both")
    if (args.select != "max" or args.vote_temperature is not None) and args.best_of is None:
        raise TrainingInputError("--select and --vote-temperature choose among --best-of N answers; give --best-of N")
    if args.vote_temperature is not None and args.select != "vote":
        raise TrainingInputError("--vote-temperature weighs the votes of --select vote; give --select vote")
    if args.best_of is not None and args.best_of > MAX_BEST_OF:
        raise TrainingInputError(f"--best-of {args.best_of}: at most {MAX_BEST_OF} (the answers are sampled in one batch)")
    if args.best_of is not None and args.num_beams > 1:
        raise TrainingInputError("--best-of samples its answers; it does not combine with --num-beams")
    try:
        sampling = Sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.num_beams,
                            args.length_penalty, {"true": True, "false": False}.get(args.early_stopping, args.early_stopping))
    except ValueError as err:
        raise TrainingInputError(f"generate: {err}") from None
    if args.best_of is not None and args.best_of > 1 and args.temperature <= 0:
        raise TrainingInputError("--best-of N samples: give --temperature > 0 (greedy decoding gives N identical answers)")
    try:
        device = inference_device(args.device)
    except ValueError as err:
        raise TrainingInputError(f"generate: {err}") from None
    model = load_model(args.model).to(device)
    tokenizer = BPETokenizer.load(args.model)
    reward_model = load_matching_reward_model(args.reward_model, tokenizer).to(device) if args.best_of is not None else None
    template = ChatTemplate(tokenizer) if args.chat else None
    generator = torch.Generator(device=device).manual_seed(args.seed)

    def answer(prompt) -> dict:
        if reward_model is not None:
            best, scored, cut = best_of_n(model, reward_model, template, prompt, args.best_of, sampling, generator,
                                          args.select, args.vote_temperature or 2.0)
            return {"completion": best, "reward": next(r for a, r in scored if a == best),
                    "candidates": [{"completion": a, "reward": r, **({"cut": True} if c else {})}
                                   for (a, r), c in zip(scored, cut)]}
        if template is not None:
            return {"completion": chat_reply(model, template, prompt, sampling, generator)}
        return {"completion": continuation(model, tokenizer, prompt, sampling, generator)}

    if sampling.max_new_tokens >= model.cfg.max_seq_len:  # the prompt would be cut to its last token
        raise TrainingInputError(f"--max-new-tokens {sampling.max_new_tokens} leaves no room for the prompt: the model "
                                 f"reads at most {model.cfg.max_seq_len} tokens (prompt and answer); give fewer")
    room = model.cfg.max_seq_len - sampling.max_new_tokens

    rows: list = [(None, {"prompt": p}) for p in args.prompt or []]
    if args.input:
        rows += [(item.line, item) if isinstance(item, BadRow) else item[:2] for item in read_objects(args.input)]
    bad, first_error = 0, None
    with jsonl_output(args.output, [args.input]) as out:  # a file is written whole, or an earlier one stays
        for n, item in rows:
            result: dict = {} if n is None else {"line": n}
            try:
                if isinstance(item, BadRow):
                    raise ValueError(item.reason)
                reference = None
                if template is not None:  # any SFT format; "messages", then Alpaca, then "prompt", as SFT reads them
                    messages, reference = chat_prompt(item)
                    given = item.get("prompt")
                    prompt = given if messages == [{"role": "user", "content": given}] else messages
                    ids = template.prompt(messages)
                elif "prompt" not in item:
                    raise ValueError('the row has no "prompt" (a "messages" or Alpaca "instruction" row needs --chat)')
                elif not isinstance(item["prompt"], str):
                    raise ValueError("prompt must be a string (a list of messages needs --chat)")
                else:
                    prompt = messages = item["prompt"]
                    ids = tokenizer.encode(prompt)
                try:
                    json.dumps(prompt, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("prompt holds a lone surrogate (or bytes that are not UTF-8), not text") from None
                result.update(prompt=prompt, **answer(messages))
                if reference is not None:
                    result["reference"] = reference
                dropped = len(ids) - room  # the model sees the prompt's last `room` tokens (training/generate.py)
                if dropped > 0:
                    result["prompt_tokens_dropped"] = dropped
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                bad += 1
                result["error"] = f"{type(err).__name__}: {err}"
                first_error = first_error or ("" if n is None else f"line {n}: ") + result["error"]
            out.write(_json_line(result))
            out.flush()
        require_usable_rows("generate", args.input or "--prompt", len(rows), bad, first_error)  # a failure writes no file
    if args.output:
        print(f"generate: {len(rows)} prompts ({bad} bad) -> {args.output}", file=summary_stream(args.output))
    return 0


def cmd_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Every stage from --from to --to, in order, each skipped when its manifest is up to date."""
    from pipelines.rundir import run_root
    from pipelines.run_report import write_run_report
    from pipelines.registry import STAGES, StageCall, settings_drift, stage_dir, stage_range

    cfg = _load(args)
    stages = stage_range(args.from_stage, args.to_stage)
    options = resolve_beam_args(beam_args, args.workers)
    for earlier in STAGES[: STAGES.index(stages[0])]:  # what --from takes as it is
        drift = settings_drift(cfg, earlier.name)
        if drift:
            print(f"run: warning: {stage_dir(cfg, earlier.name)} was made with other {earlier.name} settings than the "
                  f"config's ({drift}); --from {stages[0].name} uses it as it is (--from {earlier.name} remakes it)",
                  file=sys.stderr)
    for stage in stages:
        stage.run(StageCall(cfg, stage_dir(cfg, stage.name), args.force, options if stage.kind == "data" else []))
    report = write_run_report(run_root(cfg))
    print(f"run: finished; stage folders are under {run_root(cfg)}")
    print(f"run: report {report} (and report.md beside it)")
    return 0


def cmd_config(args: argparse.Namespace, _beam: list[str]) -> int:
    """Print the resolved config (file, then --set overrides, then the train: defaults) with the
    meaning of each key."""
    from pipelines.config import describe_config, keys_from_train, read_config

    cfg = _load(args)
    print("\n".join(describe_config(cfg, from_train=keys_from_train(read_config(args.config, args.overrides)))))
    return 0


def cmd_report(args: argparse.Namespace, _beam: list[str]) -> int:
    """Rebuild the run report from the stages' manifests and metrics."""
    from pipelines import fs
    from pipelines.rundir import run_root
    from pipelines.run_report import write_run_report

    cfg = _load(args)
    root = args.run_dir or run_root(cfg)
    if not fs.exists(root):
        raise ConfigError(f"report: no run folder {root}")
    print(f"report: {write_run_report(root)} (and report.md beside it)")
    return 0


def _stage_parsers(sub) -> None:
    """One subcommand per registered stage, with the options its kind and its spec name."""
    from pipelines.registry import STAGES

    for stage in STAGES:
        p = sub.add_parser(stage.name, help=stage.help, description=stage.description)
        _common(p)
        if stage.kind == "data":
            p.add_argument("--input", default=None, help=f"input glob (any Beam filesystem); default: {stage.default_input}")
            _workers(p)
        p.add_argument("--output", default=None, help=f"output folder; default: runs/<name>/{stage.folder}")
        if stage.actions:  # the stage itself is the default action
            itself = "train" if stage.kind == "train" else "run"
            p.add_argument("action", nargs="?", choices=[itself, *stage.actions], default=itself,
                           help=f"{itself} (default): the stage; " + "; ".join(f"{name}: {a.help}" for name, a in stage.actions.items()))
        for arg in stage.arguments:
            p.add_argument(*arg.flags, **arg.kwargs)
        if stage.kind == "train":
            p.add_argument("--until-step", type=int, default=None,
                           help="stop after this optimizer step with a checkpoint; the next run resumes from it")
            p.add_argument("--nproc", type=int, default=None, help="ranks on this machine, via the deepspeed launcher")
            p.add_argument("--no-progress", action="store_true", help="no progress bar (logs and metrics only)")
        p.set_defaults(func=cmd_stage)


def build_parser() -> argparse.ArgumentParser:
    from pipelines.registry import stage_names

    parser = argparse.ArgumentParser(
        prog="llmpipe",
        description="Raw text to an aligned language model, one stage at a time. "
        "Arguments after a lone '--' are passed to Beam as pipeline options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<stage>")

    p = sub.add_parser("sample-data", help="build the demo corpus (stdlib docstrings + planted noise)",
                       description="Build the demo corpus deterministically from the Python standard library's "
                       "docstrings and pydoc topics, with labelled duplicates, junk and bad records.")
    _common(p)
    p.add_argument("--output", default=None, help="output folder (default: sample_data.output)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--shards", type=int, default=None)
    p.add_argument("--max-docs", type=int, default=None, help="keep only this many good documents (small test corpora)")
    p.set_defaults(func=cmd_sample_data)

    _stage_parsers(sub)

    p = sub.add_parser("lora-merge", help="fold a LoRA adapter (PEFT layout) into its base model",
                       description="Write base + adapter as one model.safetensors: W + B·A·alpha/r for each adapted layer.")
    p.add_argument("--base", required=True, help="base model folder (model.safetensors + model_config.json)")
    p.add_argument("--adapter", required=True, help="adapter folder (adapter_config.json + adapter_model.safetensors)")
    p.add_argument("--output", required=True, help="folder for the merged model")
    p.set_defaults(func=cmd_lora_merge)

    p = sub.add_parser("export", help="write a model folder in Hugging Face's layout (transformers, PEFT)",
                       description="Llama-style config.json, model.safetensors under HF names, tokenizer.json with its "
                       "configs and chat template. Training stages already write hf/ beside final/ (train.export_hf); "
                       "this converts any model folder, e.g. one merged by lora-merge.")
    p.add_argument("--model", required=True, help="model folder (model.safetensors + model_config.json + tokenizer)")
    p.add_argument("--output", required=True, help="folder for the Hugging Face layout")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("generate", help="continue prompts, or answer them (--chat), with a trained model",
                       description="Prompts from --prompt (repeatable) or --input JSONL rows with a \"prompt\" (a string, or "
                       "with --chat a list of {role, content} messages); with --chat also the SFT formats' rows "
                       "(\"messages\", Alpaca \"instruction\"/\"input\"), answered from the turns before their last "
                       "assistant turn, which is given back as \"reference\". One JSON line out per prompt, with the "
                       "completion, or an error for a row that cannot be used. Greedy at temperature 0 (the default); beam "
                       "search with --num-beams; best-of-N with a reward model with --best-of.")
    p.add_argument("--model", required=True, help="model folder (model.safetensors + model_config.json + tokenizer)")
    p.add_argument("--prompt", action="append", help="a prompt (repeatable); --prompt=-x for one that starts with '-'")
    p.add_argument("--input", default=None, help="JSONL rows with a prompt (with --chat: or any SFT row)")
    p.add_argument("--output", default=None, help="JSONL file (default: stdout)")
    p.add_argument("--chat", action="store_true", help="apply the chat template and stop at the end of the answer")
    p.add_argument("--max-new-tokens", type=_positive_int, default=64)
    p.add_argument("--temperature", type=_non_negative_float, default=0.0, help="0 is greedy")
    p.add_argument("--top-k", type=_positive_int, default=None)
    p.add_argument("--top-p", type=_probability, default=None)
    p.add_argument("--seed", type=_seed, default=0, help="sampling seed (a GPU draws other samples than the CPU "
                   "for the same seed)")
    p.add_argument("--device", default="auto", help="auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda "
                   "or cuda:N; the models run in float32")
    p.add_argument("--num-beams", type=_positive_int, default=1,
                   help="beam search with this many beams (at most 64, at temperature 0); the same answer as transformers' "
                   "generate(num_beams=...) on the exported model")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="beam search: a finished hypothesis scores its summed log-probability / length ** this "
                   "(> 0 favours longer answers, < 0 shorter; max_new_tokens ** |this| at most e**64)")
    p.add_argument("--early-stopping", choices=["false", "true", "never"], default="false",
                   help="beam search: true stops once num_beams hypotheses are finished; false (transformers' default) "
                   "when no running beam can beat them at the current length; never also looks at the longest length")
    p.add_argument("--best-of", type=_positive_int, default=None, metavar="N",
                   help="with --chat and --reward-model: sample N (at most 256) answers (--temperature, --top-k, --top-p, --seed) and "
                   "return the one the reward model chooses (--select), with every candidate and its reward")
    p.add_argument("--reward-model", default=None, metavar="DIR",
                   help="a reward stage's final/ folder, trained with the policy's tokenizer (for --best-of)")
    p.add_argument("--select", choices=["max", "vote"], default="max",
                   help="with --best-of: max returns the highest-rewarded answer; vote a reward-weighted majority vote "
                   "(identical answers pool exp(reward / --vote-temperature); training/best_of_n.py)")
    p.add_argument("--vote-temperature", type=_positive_float, default=None, metavar="T",
                   help="with --select vote: how much the reward outweighs the count of samples (default 2.0; "
                   "small: like max, large: plain majority)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run every stage from one YAML, skipping finished ones",
                       description="Run every stage in order from one YAML; a stage whose manifest matches its "
                       "config and inputs is skipped, so a killed run resumes at the first unfinished stage.")
    _common(p)
    _workers(p)
    p.add_argument("--from", dest="from_stage", choices=stage_names(), default=stage_names()[0], help="first stage to run")
    p.add_argument("--to", dest="to_stage", choices=stage_names(), default=stage_names()[-1], help="last stage to run")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="print the resolved config with the meaning of every key",
                       description="The config a run would use: the YAML (or the built-in defaults), the --set "
                       "overrides and the train: defaults applied, validated, each key with its meaning.")
    _common(p)
    p.add_argument("--show", action="store_true", help="print the resolved config (the default action)")
    p.add_argument("show", nargs="?", choices=["show"], help="the same as --show (`llmpipe config show`)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("report", help="rebuild the run report (report.html + report.md) from the stage folders",
                       description="One report for the run: the data funnel with every reason a record left, filter "
                       "quality on labelled data, tokenizer and packing figures, loss curves, alignment metrics and "
                       "sample outputs. `llmpipe run` writes it at the end; this rebuilds it at any time.")
    _common(p)
    p.add_argument("--run-dir", default=None, help="run folder; default: runs/<name>")
    p.set_defaults(func=cmd_report)
    return parser


_PATH_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)
#: OSErrors that are the machine's state, not a bug: no space or quota left, an I/O error, a read-only file system
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}


def _one_line(err: BaseException) -> Optional[str]:
    """Find our own error inside whatever wrapped it (Beam re-raises worker errors as its own,
    sometimes only as text that names the original class)."""
    seen = set()
    cur: Optional[BaseException] = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, LlmpipeError):
            return str(cur).splitlines()[0] if str(cur) else type(cur).__name__
        if isinstance(cur, _PATH_ERRORS) and cur.filename:  # a path the user gave: a folder for a file, ...
            return f"{cur.strerror or type(cur).__name__}: {cur.filename}"
        if type(cur) is OSError and cur.errno in _MACHINE_ERRNOS:  # the machine's, not ours: a full disk, ...
            return f"{cur.strerror}{f': {cur.filename}' if cur.filename else ''}"
        cur = cur.__cause__ or cur.__context__
    text = str(err)
    for name in error_names():
        marker = f"{name}: "
        if marker in text:
            return text.split(marker, 1)[1].splitlines()[0].split(" [while running")[0]
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): unwinds as Ctrl-C does, so a data stage's `.partial`
    folder and the Beam workers are cleaned up the same way, and the CLI says so."""


def _terminate(signum: int, _frame) -> None:
    raise _Terminated()


#: how Beam names a _Terminated raised inside a DoFn when it re-raises it as text
_TERMINATED_NAME = f"{_Terminated.__module__}.{_Terminated.__qualname__}"


def _interrupted(err: BaseException) -> Optional[str]:
    """"terminated" or "interrupted" when `err` is a SIGTERM or a KeyboardInterrupt that something
    wrapped (Beam re-raises one raised in a DoFn as a RuntimeError naming it: "KeyboardInterrupt
    [while running 'Score/...']"), else None."""
    seen = set()
    cur: Optional[BaseException] = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur)
        if isinstance(cur, _Terminated) or text.startswith(_TERMINATED_NAME):
            return "terminated"
        if isinstance(cur, KeyboardInterrupt) or text.startswith("KeyboardInterrupt"):
            return "interrupted"
        cur = cur.__cause__ or cur.__context__
    return None


#: the options that name a file or folder (argparse dests): none may be ""
_PATH_OPTIONS = ("config", "input", "output", "base", "model", "adapter", "reward_model", "run_dir", "thresholds",
                 "tokenizer")


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, beam_args = _split_beam_args(argv)
    parser = build_parser()
    args = parser.parse_args(ours)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    empty = [name for name in _PATH_OPTIONS if getattr(args, name, None) == ""]
    if empty:  # "" would mean the option's default, or the current folder, without a word
        print(f"llmpipe: error: --{empty[0].replace('_', '-')} is empty: give a path (an unset shell variable?)",
              file=sys.stderr)
        return EXIT_USAGE
    level = os.environ.get("LLMPIPE_BEAM_LOG", "WARNING")
    logging.getLogger("apache_beam").setLevel(level)
    # Multi-process DirectRunner workers relay start-up notices (no semi_persistent_directory,
    # discarded args) as warnings on every run; they say nothing about the user's data.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel("ERROR" if level == "WARNING" else level)
    # A Ctrl-C inside a DoFn is logged by Beam with its traceback before it reaches us: we say "interrupted".
    logging.getLogger("apache_beam.runners.common").addFilter(
        lambda record: not record.getMessage().startswith(("KeyboardInterrupt", _TERMINATED_NAME)))
    func: Callable[[argparse.Namespace, list[str]], int] = args.func
    from training.stage import StageInterrupted

    import threading

    main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None  # training puts its own in
    try:
        return func(args, beam_args)
    except _Terminated:
        print("llmpipe: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly, as Unix tools do
        with contextlib.suppress(OSError, ValueError):  # no second error when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # SIGPIPE, as the shell reports a tool it ended
    except KeyboardInterrupt:
        print("llmpipe: interrupted", file=sys.stderr)
        return 130
    except StageInterrupted as err:
        print(f"llmpipe: {err}", file=sys.stderr)
        return 128 + err.signum
    except Exception as err:  # noqa: BLE001 - turned into one line, or re-raised if unknown
        stopped = _interrupted(err)  # Ctrl-C or SIGTERM inside a Beam DoFn reaches us as the runner's RuntimeError
        if stopped:
            print(f"llmpipe: {stopped}", file=sys.stderr)
            return 128 + (signal.SIGTERM if stopped == "terminated" else signal.SIGINT)
        line = _one_line(err)
        if line is None:
            raise
        print(f"llmpipe: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous_term)


if __name__ == "__main__":
    sys.exit(main())
