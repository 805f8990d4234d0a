"""The run configuration: one YAML file, a section per stage, validated before any work starts.

Every value can be overridden from the command line with `--set section.key=value`; the value is
read as YAML (so `true`, `3`, `[a, b]` work). An unknown key, a wrong type or an impossible value
becomes one `ConfigError` line naming the key.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmdata.bpe import TokenizerOptions
from llmdata.dedup import DedupOptions
from llmdata.errors import LlmpipeError
from llmdata.fields import PathStr
from llmdata.missing import MissingOptions
from llmdata.normalize import NormalizeOptions
from llmdata.outliers import OutlierOptions
from llmdata.packing import PackOptions
from llmdata.quality import QualityOptions
from llmdata.records import BAD_RECORD_KINDS
from training.options import DPOSection, LoraSection, PretrainSection, RewardSection, RLSection, SFTSection, TrainSection

Policy = Literal["quarantine", "drop", "fail"]


class ConfigError(LlmpipeError, ValueError):
    """A configuration problem, reported as one line before any work starts."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RunSection(_Section):
    name: str = Field("demo", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="run folder name under root (letters, digits, _ . -; not . or ..)")
    root: PathStr = Field("runs", description="folder (any Beam filesystem path) that holds the runs")
    input: Optional[PathStr] = Field(None, description="raw input glob of the first stage")

    @field_validator("name")
    @classmethod
    def _a_folder_of_its_own(cls, name: str) -> str:
        if name in (".", ".."):  # the pattern lets them through: they name root or its parent, not a run folder
            raise ValueError(f"{name!r} is not a run folder name")
        return name


class BadRecordPolicy(_Section):
    default: Policy = Field(
        "quarantine", description="policy for a bad record: quarantine (written with its reason) | drop (counted "
        "only) | fail (stop the stage)")
    per_kind: dict[str, Policy] = Field(default_factory=lambda: {"blank_line": "drop"},
                                        description="a policy per kind of bad record (see docs/formats.md)")

    def policy(self, kind: str) -> Policy:
        return self.per_kind.get(kind, self.default)

    def model_post_init(self, _context: Any) -> None:
        unknown = sorted(set(self.per_kind) - set(BAD_RECORD_KINDS))
        if unknown:
            raise ValueError(f"unknown bad-record kind {unknown[0]!r} (known: {', '.join(BAD_RECORD_KINDS)})")


class OutputSection(_Section):
    num_shards: int = Field(0, ge=0, description="output shards of the kept documents; 0: the runner decides")
    parquet: bool = Field(False, description="also write kept documents as parquet")


class ReportSection(_Section):
    histograms: list[str] = Field(
        default_factory=lambda: ["n_chars", "mean_word_len", "mean_line_len", "symbol_ratio", "msttr", "compression_ratio"],
        description="document features (llmdata/features.py) drawn as histograms in the stage report")
    bins: int = Field(40, ge=5, le=500, description="bins per histogram")
    examples_per_reason: int = Field(3, ge=0, le=50, description="documents shown in the report for each reason")


class CleanSection(_Section):
    input_format: Literal["auto", "jsonl", "parquet", "text"] = Field(
        "auto", description="input file format: auto (by extension) | jsonl | parquet | text")
    text_mode: Literal["file", "blank_line"] = Field("file", description="text files: one document per file, or "
                                                     "documents separated by blank lines")
    text_field: str = Field("text", description="the record field that holds the text")
    id_field: str = Field("id", description="the record field that holds the id (else a hash of source and position)")
    id_scope: Literal["dataset", "file"] = Field(
        "dataset", description="dataset: a given id is unique in the whole input; file: only within its file (shards "
        "that number their rows from 0), and the id becomes '<file>:<id>'")
    bad_records: BadRecordPolicy = Field(
        default_factory=BadRecordPolicy, description="what becomes of a record that cannot be used (unreadable, no "
        "text...), per kind")
    check_duplicate_ids: bool = Field(True, description="quarantine the second record with an id already seen")
    missing: MissingOptions = Field(
        default_factory=MissingOptions, description="imputation of missing numeric meta fields from whole-dataset "
        "statistics")
    normalize: NormalizeOptions = Field(
        default_factory=NormalizeOptions, description="text normalization steps, in a fixed order (Unicode form, "
        "invisible characters, spacing...)")
    quality: QualityOptions = Field(
        default_factory=QualityOptions, description="fixed heuristic rule sets (Gopher, C4, FineWeb), each off by "
        "default")
    outliers: OutlierOptions = Field(
        default_factory=OutlierOptions, description="per-feature outlier filters whose thresholds (IQR or z-score) "
        "are computed from the data")
    output: OutputSection = Field(default_factory=OutputSection, description="how the kept documents are written")
    report: ReportSection = Field(default_factory=ReportSection, description="what the stage report shows")
    eval_labels: Optional[PathStr] = Field(
        None, description="JSONL of {\"id\", \"label\"} (the demo generator's), to report junk removed and good "
        "documents kept; null: none")


class DedupSection(DedupOptions):
    """Exact and near-duplicate removal; see llmdata/dedup.py for the options' meaning."""

    input: Optional[PathStr] = Field(
        None, description="input glob of documents; default: the clean stage's kept documents in the run dir")
    num_shards: int = Field(4, ge=1, le=100_000, description="output shards, fixed so reruns are identical")
    bad_records: BadRecordPolicy = Field(
        default_factory=BadRecordPolicy, description="what becomes of an input record that cannot be used, per kind")
    eval_labels: Optional[PathStr] = Field(
        None, description="the demo generator's labels.jsonl, to report the recall of planted duplicates; null: none")


class TokenizerSection(TokenizerOptions):
    """Byte-level BPE training; see pipelines/tokenizer.py for the options' meaning."""

    input: Optional[PathStr] = Field(
        None, description="input glob of documents; default: the dedup stage's kept documents in the run dir")
    bad_records: BadRecordPolicy = Field(
        default_factory=BadRecordPolicy, description="what becomes of an input record that cannot be used, per kind")


class PackSection(PackOptions):
    """Encoding and packing into Megatron token files; see pipelines/pack.py."""

    input: Optional[PathStr] = Field(
        None, description="input glob of documents; default: the dedup stage's kept documents in the run dir")
    tokenizer: Optional[PathStr] = Field(None, description="tokenizer folder; default: the run's 03-tokenizer folder")
    bad_records: BadRecordPolicy = Field(
        default_factory=BadRecordPolicy, description="what becomes of an input record that cannot be used, per kind")


class SampleDataSection(_Section):
    output: PathStr = Field("data/demo", description="folder of the demo corpus")
    seed: int = Field(0, description="the generator's seed: the same seed, the same corpus")
    shards: int = Field(4, ge=1, le=1000, description="jsonl.gz files the corpus is split into")
    max_docs: Optional[int] = Field(None, ge=10, description="keep only this many good documents (small test corpora)")


class PipelineConfig(_Section):
    run: RunSection = Field(default_factory=RunSection, description="the run's name and where its folder lives")
    train: dict[str, Any] = Field(default_factory=dict, description="defaults for every training stage's section: "
                                  "any key they share (micro_batch to export_hf, first in each); a stage's own key "
                                  "wins")
    sample_data: SampleDataSection = Field(
        default_factory=SampleDataSection, description="the demo corpus generator (llmpipe sample-data)")
    clean: CleanSection = Field(
        default_factory=CleanSection, description="data stage 01-clean: reading, bad records, missing values, "
        "normalization, quality and outlier filters")
    dedup: DedupSection = Field(
        default_factory=DedupSection, description="data stage 02-dedup: exact and MinHash-LSH near-duplicate removal")
    tokenizer: TokenizerSection = Field(
        default_factory=TokenizerSection, description="stage 03-tokenizer: byte-level BPE training")
    pack: PackSection = Field(
        default_factory=PackSection, description="stage 04-pack: encoding documents and packing them into "
        "fixed-length training sequences")
    pretrain: PretrainSection = Field(
        default_factory=PretrainSection, description="training stage 05-pretrain: next-token pretraining from a "
        "model preset (DeepSpeed)")
    sft: SFTSection = Field(
        default_factory=SFTSection, description="training stage: supervised fine-tuning (SFT) of every weight on "
        "conversations")
    lora: LoraSection = Field(
        default_factory=LoraSection, description="training stage: SFT through low-rank adapters (LoRA), base weights "
        "frozen")
    reward: RewardSection = Field(
        default_factory=RewardSection, description="training stage: a reward model (scalar head) trained on "
        "preference pairs (Bradley-Terry)")
    dpo: DPOSection = Field(
        default_factory=DPOSection, description="training stage: direct preference optimization (DPO) against a "
        "frozen reference model")
    rl: RLSection = Field(
        default_factory=RLSection, description="training stage: online RL (GRPO) of the SFT model with the reward "
        "model and verifiable checkers")


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping with a key twice (PyYAML keeps the last silently: a
    section written twice would lose its first half's settings)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            except TypeError:  # an unhashable key: the base class reports it
                break
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` override to a nested dict, creating sections as needed."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. clean.outliers.iqr_k=2.5")
    key, value = assignment.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {assignment!r}: empty key")
    cur = data
    for part in parts[:-1]:
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        cur = nxt
    cur[parts[-1]] = _parse_value(value)


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    value = first.get("input")
    shown = "" if first["type"] in ("extra_forbidden", "missing") or isinstance(value, dict) else f" (got {value!r})"
    more = f" [and {len(err.errors()) - 1} more]" if len(err.errors()) > 1 else ""
    return f"config error: {loc}: {msg}{shown}{more}"


def with_train_defaults(data: dict) -> dict:
    """The config with the `train:` block's keys copied into every training stage's section
    that does not set them itself. A key that no training stage has is a ConfigError."""
    from pipelines.registry import STAGES

    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"config error: train: expected a mapping of training options, got {type(train).__name__}")
    unknown = sorted(set(train) - set(TrainSection.model_fields))
    if unknown:
        raise ConfigError(f"config error: train.{unknown[0]}: unknown key (the train block holds the options "
                          "every training stage shares)")
    for key, value in train.items():  # each value checked on its own: a section may override it
        try:
            TrainSection.model_validate({key: value})
        except ValidationError as err:
            mine = [e for e in err.errors() if e["loc"][:1] == (key,)]
            if mine:
                raise ConfigError(f"config error: train.{key}: {mine[0]['msg']} (got {value!r})") from None
    out = dict(data)
    if "train" in out:
        out["train"] = train  # `train:` with its keys commented out is YAML null: no defaults
    for stage in STAGES:
        if stage.kind == "train" and train:
            section = out.get(stage.name) or {}
            if not isinstance(section, dict):
                continue  # validation names the section
            out[stage.name] = {**train, **section}
    return out


def read_config(path: Optional[str], overrides: list[str] | None = None) -> dict:
    """The YAML (safe_load) with the overrides applied, before the `train:` defaults and before
    validation; any problem reading it is one ConfigError line."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if path == "" or not p.exists():
            raise ConfigError(f"config file not found: {path!r}")
        if p.is_dir():
            raise ConfigError(f"config file {path} is a directory: give the YAML file (e.g. configs/pipeline.yaml)")
        if not p.is_file():
            raise ConfigError(f"config file {path} is not a regular file")
        try:
            loaded = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = " ".join(str(getattr(err, "problem", "") or "").split())  # e.g. "found character '\t' ..."
            why = f": {problem}" if problem else ""
            raise ConfigError(f"config file {path}{where}: not valid YAML{why}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path}: not UTF-8 text") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    for assignment in overrides or []:
        apply_override(data, assignment)
    return data


def load_config(path: Optional[str], overrides: list[str] | None = None) -> PipelineConfig:
    """Read the YAML (safe_load), apply overrides, validate; any problem is one ConfigError line."""
    data = with_train_defaults(read_config(path, overrides))
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None
    except ValueError as err:  # raised from model_post_init
        raise ConfigError(f"config error: {err}") from None
    where = _bool_as_number(data, cfg)
    if where:
        raise ConfigError(f"config error: {where[0]}: Input should be a number, not a boolean (got {str(where[1]).lower()})")
    return cfg


def _bool_as_number(data: dict, model: Any, path: str = "") -> Optional[tuple[str, bool]]:
    """(key, value) of the first true/false in `data` that validation turned into a number
    (pydantic's lax mode reads `max_steps: true` as 1), or None."""
    for key, raw in data.items():
        value = model.get(key) if isinstance(model, dict) else getattr(model, str(key), None)
        where = f"{path}.{key}" if path else str(key)
        if isinstance(raw, bool) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return where, raw
        if isinstance(raw, dict) and value is not None:
            found = _bool_as_number(raw, value, where)
            if found:
                return found
    return None


def keys_from_train(data: dict) -> dict[str, set[str]]:
    """Per training stage, the keys its section takes from the `train:` block of `data` (a config
    as `read_config` returns it): those the block sets and the section itself does not."""
    from pipelines.registry import STAGES

    train = data.get("train")
    if not isinstance(train, dict):
        return {}
    own = {name: set(section) if isinstance(section, dict) else set() for name, section in data.items()}
    return {stage.name: set(train) - own.get(stage.name, set()) for stage in STAGES if stage.kind == "train"}


#: `config --show` keeps a line within this many characters where it can: a longer description
#: continues on comment lines below, aligned with its `#`.
SHOW_WIDTH = 120
FROM_TRAIN = "(from train:)"


_LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")


def _scalar(value: Any) -> str:
    """`value` as YAML on one line (flow style); a text with a line break in it double-quoted with
    escapes, since a plain or single-quoted one would continue on lines of its own."""
    def dump(**style: Any) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1_000_000, sort_keys=False,
                              **style).rstrip("\n")  # not str.strip: U+00A0 or U+3000 can end the value
        return text[:-4].rstrip("\n ") if text.endswith("\n...") or text.endswith(" ...") else text

    text = dump()
    return dump(default_style='"') if any(c in text for c in _LINE_BREAKS) else text


def _noted(line: str, note: Optional[str], pad: str) -> list[str]:
    """`line` with `note` as a YAML comment: beside it, continued on aligned comment lines when
    long, or above it when the line leaves too little room."""
    if not note:
        return [line]
    if len(line) + 4 + len(note) <= SHOW_WIDTH:
        return [f"{line}  # {note}"]
    col = len(line) + 2
    if SHOW_WIDTH - col - 2 >= 36:
        chunks = textwrap.wrap(note, SHOW_WIDTH - col - 2, break_on_hyphens=False)
        return [f"{line}  # {chunks[0]}"] + [f"{' ' * col}# {c}" for c in chunks[1:]]
    chunks = textwrap.wrap(note, max(SHOW_WIDTH - len(pad) - 2, 40), break_on_hyphens=False)
    return [f"{pad}# {c}" for c in chunks] + [line]


def _describe_map(value: dict, plain: dict, indent: int, keys: Optional[type[BaseModel]] = None) -> list[str]:
    """A mapping's entries as YAML block lines: a model entry with its fields described, a nested
    mapping as a block, anything else in flow style. `keys`: a model whose fields describe the
    entries (the `train:` block's keys are the shared training options)."""
    lines: list[str] = []
    pad = "  " * indent
    for (key, item), shown in zip(value.items(), plain.values()):
        name = _scalar(key)
        field = keys.model_fields.get(key) if keys is not None and isinstance(key, str) else None
        note = field.description if field is not None else None
        if isinstance(item, BaseModel):
            lines.extend(_noted(f"{pad}{name}:", note, pad))
            lines.extend(describe_config(item, indent + 1))
        elif isinstance(item, dict) and item:
            lines.extend(_noted(f"{pad}{name}:", note, pad))
            lines.extend(_describe_map(item, shown, indent + 1))
        else:
            lines.extend(_noted(f"{pad}{name}: {_scalar(shown)}", note, pad))
    return lines


def describe_config(cfg: BaseModel, indent: int = 0, *, from_train: Optional[dict[str, set[str]]] = None,
                    marked: frozenset[str] = frozenset()) -> list[str]:
    """The resolved config as YAML lines, each key followed by its meaning as a comment (the
    field's description in the schema); non-empty mappings as blocks, one entry a line.
    `from_train` (per training stage, the keys it took from the `train:` block, see
    `keys_from_train`) marks those values "(from train:)", as `marked` does for keys of `cfg`
    itself. `llmpipe config --show` prints it; it loads back as the same config."""
    lines: list[str] = []
    pad = "  " * indent
    plain = cfg.model_dump(mode="json")
    for name, field in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        note = f"{FROM_TRAIN} {field.description}" if name in marked else field.description
        if indent == 0 and lines:
            lines.append("")
        if isinstance(value, BaseModel):
            lines.extend(_noted(f"{pad}{name}:", note, pad))
            inherited = frozenset((from_train or {}).get(name, ())) if indent == 0 else frozenset()
            lines.extend(describe_config(value, indent + 1, marked=inherited))
        elif isinstance(value, dict) and value:
            lines.extend(_noted(f"{pad}{name}:", note, pad))
            keys = TrainSection if isinstance(cfg, PipelineConfig) and name == "train" else None
            lines.extend(_describe_map(value, plain[name], indent + 1, keys))
        else:
            lines.extend(_noted(f"{pad}{name}: {_scalar(plain[name])}", note, pad))
    return lines
