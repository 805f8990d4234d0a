"""The stage registry: every stage of a run, in order, declared once.

The CLI's stage subcommands, `llmpipe run --from/--to`, the run folder layout (`rundir`), the run
report and the Makefile's `<stage>-stage` targets (through `llmpipe run --to`) all read this table.
A new stage is one module with its run function plus one `StageSpec` here (docs/architecture.md).

A spec's `run` takes a `StageCall`: the resolved config, the stage's output folder, `--force`,
the checked Beam options (data stages) and the stage's own command-line values (`--input`,
`--tokenizer`, `--base`, `--until-step`...; empty inside `llmpipe run`). It imports its stage
module when called, so reading the registry imports neither Beam nor DeepSpeed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

from llmdata.errors import LlmpipeError

if TYPE_CHECKING:  # the config imports the option classes; the registry only passes them on
    from pipelines.config import PipelineConfig


@dataclass
class StageCall:
    """One invocation of a stage (see the module docstring)."""

    cfg: "PipelineConfig"
    out: str
    force: bool = False
    beam_args: list[str] = field(default_factory=list)
    given: dict[str, Any] = field(default_factory=dict)  # the stage's own CLI values, None when not given

    def arg(self, name: str) -> Any:
        return self.given.get(name)


@dataclass(frozen=True)
class Argument:
    """A stage-specific command-line option: argparse's flags and keyword arguments."""

    flags: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StageAction:
    """Another use of a stage's output, run as `llmpipe <stage> <action>` (e.g. `reward score`);
    `run(call)` returns the exit code, and `call.out` is the action's --output (None: stdout)."""

    help: str
    run: Callable[[StageCall], int]


@dataclass(frozen=True)
class StageSpec:
    name: str  # the subcommand and the config section
    folder: str  # the stage's folder in the run directory
    kind: Literal["data", "train"]  # data: a Beam pipeline; train: a DeepSpeed engine
    help: str
    description: str
    run: Callable[[StageCall], dict]
    default_input: str  # what the stage reads when no input is given (help text)
    arguments: tuple[Argument, ...] = ()
    actions: dict[str, StageAction] = field(default_factory=dict)


def stage_dir(cfg: "PipelineConfig", stage: str) -> str:
    from pipelines.rundir import stage_dir as folder

    return folder(cfg, stage)


def _kept(cfg: "PipelineConfig", stage: str, upstream: str) -> tuple[str, Optional[str]]:
    """The input glob of a data stage and the upstream folder that stands for it in the
    fingerprint: the section's own `input`, else the upstream stage's kept documents."""
    from pipelines import fs

    own = getattr(cfg, stage).input
    if own:
        return own, None
    folder = stage_dir(cfg, upstream)
    return fs.join(folder, "kept", "part-*.jsonl.gz"), folder


def _data_input(call: StageCall, stage: str, upstream: str) -> tuple[str, Optional[str]]:
    given = call.arg("input")
    return (given, None) if given else _kept(call.cfg, stage, upstream)


def _policies(section) -> tuple[dict, str]:
    return dict(section.bad_records.per_kind), section.bad_records.default


def _run_clean(call: StageCall) -> dict:
    from pipelines.clean_stage import run_clean
    from pipelines.config import ConfigError

    pattern = call.arg("input") or call.cfg.run.input
    if not pattern:
        raise ConfigError("no input: give --input GLOB or set run.input in the config")
    return run_clean(call.cfg.clean, pattern, call.out, call.beam_args, force=call.force,
                     thresholds_file=call.arg("thresholds"))


def _run_dedup(call: StageCall) -> dict:
    from pipelines.dedup_stage import run_dedup

    pattern, upstream = _data_input(call, "dedup", "clean")
    return run_dedup(call.cfg.dedup, pattern, call.out, call.beam_args, force=call.force, upstream=upstream)


def _run_tokenizer(call: StageCall) -> dict:
    from pipelines.tokenizer import run_tokenizer

    section = call.cfg.tokenizer
    pattern, upstream = _data_input(call, "tokenizer", "dedup")
    return run_tokenizer(section, pattern, call.out, call.beam_args, *_policies(section), force=call.force,
                         upstream=upstream)


def _tokenizer_dir(call: StageCall, section) -> str:
    return call.arg("tokenizer") or section.tokenizer or stage_dir(call.cfg, "tokenizer")


def _run_pack(call: StageCall) -> dict:
    from pipelines.pack import run_pack

    section = call.cfg.pack
    pattern, upstream = _data_input(call, "pack", "dedup")
    return run_pack(section, pattern, _tokenizer_dir(call, section), call.out, call.beam_args, *_policies(section),
                    force=call.force, upstream=upstream)


def _training(call: StageCall) -> dict:
    """The keywords every training stage takes from the command line."""
    return {"force": call.force, "until_step": call.arg("until_step"), "progress": not call.arg("no_progress")}


def _run_pretrain(call: StageCall) -> dict:
    from training.pretrain import PretrainRecipe
    from training.recipe import run_recipe

    section = call.cfg.pretrain
    pack_dir = call.arg("input") or section.input or stage_dir(call.cfg, "pack")
    return run_recipe(PretrainRecipe(section, pack_dir, _tokenizer_dir(call, section), call.out), **_training(call))


def base_dir(cfg: "PipelineConfig", stage: str, given: Optional[str] = None) -> str:
    """The model a model stage starts from: --base, the section's `base`, or the final model of
    its `start_from` stage in the run."""
    section = getattr(cfg, stage)
    return given or section.base or os.path.join(stage_dir(cfg, section.start_from), "final")


def _model_stage(stage: str, recipe: str) -> Callable[[StageCall], dict]:
    """The run function of a stage that starts from a trained model (SFT, LoRA, reward, DPO):
    `recipe` names its training.recipe.TunedRecipe class as "module:Class" (imported when run)."""

    def run(call: StageCall) -> dict:
        from importlib import import_module

        from training.recipe import run_recipe

        module, name = recipe.split(":")
        cls = getattr(import_module(module), name)
        section = getattr(call.cfg, stage)
        return run_recipe(cls(section, base_dir(call.cfg, stage, call.arg("base")), call.out), **_training(call))

    return run


def _reward_score(call: StageCall) -> int:
    from training.reward import score_file
    from training.stage import summary_stream

    model_dir = call.arg("model") or os.path.join(stage_dir(call.cfg, "reward"), "final")
    rows, bad, cut = score_file(model_dir, call.arg("input"), call.out)
    shortened = f", {cut} answers scored cut to the model's length (\"<key>_cut\")" if cut else ""
    if call.out or cut:
        print(f"reward score: {rows} rows, {rows - bad} scored, {bad} bad{shortened}" + (f" -> {call.out}" if call.out else ""),
              file=summary_stream(call.out))
    return 0


_TOKENIZER_ARG = Argument(("--tokenizer",), {"default": None, "help": "tokenizer folder; default: runs/<name>/03-tokenizer"})


def _base_arg(default: str) -> Argument:
    return Argument(("--base",), {"default": None, "help": f"model folder to start from; default: {default}"})


#: Every stage of a run, in run order.
STAGES: tuple[StageSpec, ...] = (
    StageSpec(
        "clean", "01-clean", "data", "stage 1: quarantine bad records, impute, normalize, filter (Beam)",
        "The clean stage (Apache Beam). Reads jsonl/jsonl.gz/parquet/text files, quarantines malformed records with a "
        "reason, imputes numeric metadata, normalizes text, applies the enabled fixed rules and the statistical outlier "
        "filter, and writes kept, rejected and quarantined records, thresholds.json, stats.json, report.md and "
        "manifest.json.", _run_clean, "run.input",
        (Argument(("--thresholds",), {"default": None,
                                      "help": "apply a saved thresholds.json instead of computing thresholds"}),)),
    StageSpec(
        "dedup", "02-dedup", "data", "stage 2: exact and MinHash near-duplicate removal (Beam)",
        "The dedup stage (Apache Beam). Groups exact-duplicate candidates by a normalized key and keeps only those "
        "equal to the text (after case and whitespace folding), finds near duplicates with MinHash LSH (datasketch) "
        "over shingles suited to each document's script, verifies candidate pairs, computes connected components with keyed large-star/small-star "
        "rounds, keeps one document per cluster, and writes kept and removed documents (with cluster and "
        "duplicate_of), clusters.json, report.md and manifest.json.", _run_dedup,
        "runs/<name>/01-clean/kept/part-*.jsonl.gz"),
    StageSpec(
        "tokenizer", "03-tokenizer", "data", "stage 3: train a byte-level BPE tokenizer (Beam counting + merges)",
        "Counts pre-tokens (a GPT-style regex) as a Beam aggregation, keeps a bounded table, learns merges "
        "incrementally, and saves tokenizer.json (HF), vocab.json + merges.txt and a report with held-out bytes per "
        "token.", _run_tokenizer, "runs/<name>/02-dedup/kept/part-*.jsonl.gz"),
    StageSpec(
        "pack", "04-pack", "data", "stage 4: encode and pack documents into Megatron .bin/.idx (Beam)",
        "Encodes documents with the trained tokenizer (tiktoken fast path), appends end-of-text, splits train/val by a "
        "hash of the id, and writes Megatron .bin/.idx shards with a packing plan (concat or best_fit) per shard, "
        "shards.json and report.md.", _run_pack, "runs/<name>/02-dedup/kept/part-*.jsonl.gz", (_TOKENIZER_ARG,)),
    StageSpec(
        "pretrain", "05-pretrain", "train", "stage 5: pretrain the decoder on the packed tokens (DeepSpeed)",
        "Next-token pretraining of the decoder model (training/model.py) on the pack stage's token files with a "
        "DeepSpeed engine built from the pretrain section: ZeRO 0-3, optional pipeline parallelism, evaluation, "
        "checkpoints with exact resume, safetensors export, metrics, loss curve and report. One rank runs in-process; "
        "--nproc N (or the deepspeed launcher) runs N ranks.", _run_pretrain, "runs/<name>/04-pack",
        (Argument(("--input",), {"default": None, "help": "pack stage folder; default: runs/<name>/04-pack"}),
         _TOKENIZER_ARG)),
    *(StageSpec(
        name, folder, "train", f"stage {folder[1]}: {what} on conversations (DeepSpeed)",
        f"{what[0].upper() + what[1:]} of a trained model on chat, prompt/completion or Alpaca JSONL with the loss on "
        "assistant tokens, packed with document masks; reports held-out loss and exact match of greedy answers before "
        "and after. Bad rows are counted with their line.", _model_stage(name, recipe), "runs/<name>/05-pretrain/final",
        (_base_arg("runs/<name>/05-pretrain/final"),))
      for name, folder, what, recipe in (
          ("sft", "06-sft", "full supervised fine-tuning", "training.finetune:SFTRecipe"),
          ("lora", "07-lora", "LoRA fine-tuning (base frozen)", "training.finetune:LoraRecipe"))),
    StageSpec(
        "reward", "08-reward", "train", "stage 8: train a reward model on preference pairs, or score responses",
        "`llmpipe reward` trains a scalar head on a trained model with the Bradley-Terry loss on {prompt, chosen, "
        "rejected} JSONL and reports held-out pairwise accuracy; `llmpipe reward score --input rows.jsonl` scores "
        "{prompt, response} (or chosen/rejected) rows with a trained one.", _model_stage("reward", "training.reward:RewardRecipe"),
        "the final model of reward.start_from",
        (_base_arg("the final model of reward.start_from"),
         Argument(("--model",), {"default": None, "help": "score: reward model folder; default: runs/<name>/08-reward/final"}),
         Argument(("--input",), {"default": None, "help": "score: JSONL rows to score"})),
        {"score": StageAction("score {prompt, response} (or chosen/rejected) JSONL rows with a reward model, one JSON "
                              "line per row to --output or stdout", _reward_score)}),
    StageSpec(
        "dpo", "09-dpo", "train", "stage 9: direct preference optimization of the SFT model on preference pairs",
        "`llmpipe dpo` trains a model on {prompt, chosen, rejected} JSONL with the DPO loss against a frozen copy of "
        "itself, and reports held-out implicit-reward accuracy and exact match.", _model_stage("dpo", "training.dpo:DPORecipe"),
        "the final model of dpo.start_from", (_base_arg("the final model of dpo.start_from (also the reference)"),)),
    StageSpec(
        "rl", "10-rl", "train", "stage 10: online RL (GRPO) of the SFT model guided by the reward model and checkers",
        "`llmpipe rl` samples a group of completions per prompt from the policy, scores them with the configured reward "
        "sources (the checker of reference answers, the 08-reward model, a length/format penalty), and optimizes GRPO's "
        "clipped objective with a KL penalty to a frozen copy of the starting model; reports rewards, KL, reward "
        "hacking and held-out exact match before and after.", _model_stage("rl", "training.rl_stage:RLRecipe"),
        "the final model of rl.start_from", (_base_arg("the final model of rl.start_from (also the KL reference)"),)),
)

class UnknownStageError(LlmpipeError, KeyError):
    """A stage name the registry does not hold."""


def stage_names() -> tuple[str, ...]:
    """The registered stages' names, in run order."""
    return tuple(s.name for s in STAGES)


def spec(name: str) -> StageSpec:
    """The registered stage called `name`; UnknownStageError otherwise."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise UnknownStageError(f"unknown stage {name!r} (stages: {', '.join(stage_names())})")


def settings_drift(cfg: "PipelineConfig", stage: str) -> Optional[str]:
    """How the settings a finished stage folder of the run was made with (its manifest's `config`)
    differ from `cfg`'s section for it: the first differing key, "key: old -> new", or None (the
    same, or no finished folder to compare)."""
    from pipelines.manifest import read_manifest

    manifest = read_manifest(stage_dir(cfg, stage))
    made = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(made, dict):
        return None
    now = json.loads(json.dumps(getattr(cfg, stage).model_dump(mode="json")))
    return _first_difference(made, now)


def _first_difference(old: Any, new: Any, path: str = "") -> Optional[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    return None if old == new else f"{path}: {json.dumps(old)} -> {json.dumps(new)}"


def stage_range(first: str, last: str) -> tuple[StageSpec, ...]:
    """The stages from `first` to `last` inclusive, in run order."""
    names = stage_names()
    i, j = names.index(spec(first).name), names.index(spec(last).name)
    if i > j:
        from pipelines.config import ConfigError

        raise ConfigError(f"--from {first} comes after --to {last}")
    return STAGES[i : j + 1]
