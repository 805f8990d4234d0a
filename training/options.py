"""The training stages' YAML sections, kept free of torch so a config is checked in milliseconds.

`TrainSection` is what every training stage shares (batching, ZeRO, precision, optimizer,
schedule, parallelism, logging and checkpoint intervals); each stage adds its own inputs.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline_parallel: ClassVar[bool] = False  # whether the stage can build its model as a PipelineModule
    micro_batch: int = Field(8, ge=1)  # sequences per rank per forward pass
    grad_accum: int = Field(1, ge=1)  # micro batches per optimizer step
    zero_stage: int = Field(1, ge=0, le=3)
    offload_optimizer: bool = False  # ZeRO-Offload of optimizer state to CPU memory (stage >= 1)
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 where the accelerator supports it
    grad_clip: float = Field(1.0, ge=0)
    lr: float = Field(3e-4, gt=0)
    min_lr: float = Field(3e-5, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(100, ge=0)
    max_steps: int = Field(1000, ge=1)  # optimizer steps
    pipeline_stages: int = Field(1, ge=1)  # > 1: deepspeed.pipe.PipelineModule
    activation_checkpointing: bool = False
    compile: bool = False  # torch.compile each transformer block (worth it on GPUs; minutes of compiling on a CPU)
    seed: int = 0
    eval_every: int = Field(50, ge=1)  # optimizer steps between validation passes (and one at the end)
    eval_batches: int = Field(8, ge=1)  # micro batches per rank in one validation pass
    save_every: int = Field(100, ge=1)  # optimizer steps between checkpoints (and one at the end)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    tensorboard: bool = True
    peak_tflops: Optional[float] = Field(None, gt=0)  # per device, for MFU; default: known GPU, or measured on CPU
    export_hf: bool = True  # also write hf/: the final model in Hugging Face's layout (transformers, PEFT)

    @model_validator(mode="after")
    def _compatible(self) -> "TrainSection":
        if self.pipeline_stages > 1 and not self.pipeline_parallel:
            raise ValueError("pipeline_stages > 1 (pipeline parallelism) is for pretraining only; this stage "
                             "scales with data parallelism and ZeRO")
        if self.pipeline_stages > 1 and self.zero_stage > 1:
            raise ValueError(
                f"pipeline parallelism needs ZeRO stage 0 or 1 (got zero_stage {self.zero_stage} with "
                f"pipeline_stages {self.pipeline_stages})"
            )
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")
        return self


class GenerateSection(BaseModel):
    """A few continuations written to the stage's report, so a person can see what was learned."""

    model_config = ConfigDict(extra="forbid")
    prompts: list[str] = Field(default_factory=lambda: ["def ", "Return the", "The following"])
    max_new_tokens: int = Field(48, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0)
    top_k: Optional[int] = Field(None, ge=1)
    top_p: Optional[float] = Field(None, gt=0, le=1)


class PretrainSection(TrainSection):
    """Next-token pretraining on the pack stage's token files."""

    pipeline_parallel: ClassVar[bool] = True

    input: Optional[str] = None  # default: the run's 04-pack folder
    tokenizer: Optional[str] = None  # default: the run's 03-tokenizer folder
    model: str = "tiny"  # a preset name in `presets`
    presets: Optional[str] = None  # a YAML of your own presets; default: the packaged training/models.yaml
    model_overrides: dict[str, Any] = Field(default_factory=dict)  # e.g. {position: alibi, n_layers: 2}
    # a model folder (another run's final/) to continue pretraining from, instead of random weights;
    # the architecture is then the folder's, so model_overrides must stay empty
    init_from: Optional[str] = None
    generate: GenerateSection = Field(default_factory=GenerateSection)

    @model_validator(mode="after")
    def _one_architecture(self) -> "PretrainSection":
        if self.init_from and self.model_overrides:
            raise ValueError("model_overrides cannot change a model loaded with init_from (its architecture is the folder's)")
        return self


class AlignSection(TrainSection):
    """What every alignment stage (SFT, LoRA, reward, DPO) shares: the pretraining text on which
    forgetting is measured, before and after (training/forgetting.py)."""

    # pack stage folder whose val split is scored before and after training (and whose train split
    # pretrain_mix draws from); default: the run's 04-pack beside the stage folder, when there is one
    pretrain_data: Optional[str] = None
    forgetting_samples: int = Field(64, ge=0)  # pack val windows scored before and after; 0: not measured


class SFTSection(AlignSection):
    """Supervised fine-tuning of a trained model on conversations (see llmdata/chat.py)."""

    base: Optional[str] = None  # model folder; default: the `final` model of the run's `start_from` stage
    start_from: Literal["pretrain", "sft"] = "pretrain"
    train_file: str = "data/demo/sft/train.jsonl"
    heldout_file: Optional[str] = "data/demo/sft/heldout.jsonl"
    seq_len: int = Field(256, ge=16)  # conversations are packed (with document masks) into windows this long
    train_on_prompt: bool = False  # loss on every token instead of the assistant turns only
    eval_generate: int = Field(100, ge=0)  # held-out examples answered by greedy generation for exact match
    max_new_tokens: int = Field(32, ge=1)
    # share of the training windows that are pretraining text (pack train split, next-token loss on
    # every token): replay against forgetting, InstructGPT's pretraining mix; 0: conversations only
    pretrain_mix: float = Field(0.0, ge=0, lt=1)


class LoraSection(SFTSection):
    """SFT through low-rank adapters; the base weights stay frozen."""

    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[Literal["wq", "wk", "wv", "wo", "w1", "w2", "w3"]] = Field(
        default_factory=lambda: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"])
    # Tokens whose embedding (and tied output) rows train too, as PEFT's trainable_token_indices: a
    # special token by name (the chat template's, which pretraining never saw), a token id, or any
    # other text, whose tokens' rows then train.
    train_tokens: list[Union[int, str]] = Field(
        default_factory=lambda: ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"])
    # + the rows of every token the training answers contain (their targets): what a base model
    # whose output rows for those tokens are poor needs in order to say the answers at all
    train_answer_tokens: bool = False


class RewardSection(AlignSection):
    """A scalar reward head on a trained model, trained on preference pairs (Bradley-Terry)."""

    base: Optional[str] = None  # model folder; default: the `final` model of the run's `start_from` stage
    start_from: Literal["pretrain", "sft"] = "pretrain"  # InstructGPT starts its reward model from the SFT model
    train_file: str = "data/demo/preferences/train.jsonl"
    heldout_file: Optional[str] = "data/demo/preferences/heldout.jsonl"
    max_len: int = Field(256, ge=8)  # longer pairs are cut from the left of the prompt
    margin: float = Field(0.0, ge=0)  # -log sigmoid(r_chosen - r_rejected - margin)
    center_coef: float = Field(0.0, ge=0)  # + coef * (r_chosen + r_rejected)^2 keeps rewards near 0
    lm_coef: float = Field(0.0, ge=0)  # + coef * next-token loss on the chosen responses (GRM's regularizer)


class DPOSection(AlignSection):
    """Direct preference optimization (Rafailov et al. 2023) of a trained model on preference
    pairs, against a frozen copy of itself as the reference."""

    base: Optional[str] = None  # model folder; default: the `final` model of the run's `start_from` stage
    start_from: Literal["pretrain", "sft"] = "sft"
    train_file: str = "data/demo/preferences/train.jsonl"
    heldout_file: Optional[str] = "data/demo/preferences/heldout.jsonl"
    max_len: int = Field(256, ge=8)  # longer pairs are cut from the left of the prompt
    beta: float = Field(0.1, gt=0)  # strength of the pull towards the reference (the KL penalty's weight)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)  # conservative DPO: the share of pairs assumed mislabelled
    # RPO (Pang et al. 2024): + rpo_alpha x next-token loss on the chosen responses, a mean over the
    # step's chosen tokens; holds the chosen answers' likelihood up (0 = plain DPO; the paper uses 1)
    rpo_alpha: float = Field(0.0, ge=0)
    eval_file: Optional[str] = "data/demo/sft/heldout.jsonl"  # conversations answered greedily for exact match
    eval_generate: int = Field(100, ge=0)
    max_new_tokens: int = Field(32, ge=1)
