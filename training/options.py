"""The training stages' YAML sections, kept free of torch so a config is checked in milliseconds.

`TrainSection` is what every training stage shares (batching, ZeRO, precision, optimizer,
schedule, parallelism, logging and checkpoint intervals); each stage adds its own inputs.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmdata.fields import PathStr


class Section(BaseModel):
    """The base of every training section: no unknown key, and every float finite (an inf
    learning rate or KL weight would make every step's loss or gradients non-finite)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TrainSection(Section):
    pipeline_parallel: ClassVar[bool] = False  # whether the stage can build its model as a PipelineModule
    micro_batch: int = Field(8, ge=1, description="sequences per rank per forward pass (micro batch size)")
    grad_accum: int = Field(
        1, ge=1, description="micro batches per optimizer step (gradient accumulation); global batch = micro_batch x "
        "grad_accum x data-parallel ranks")
    zero_stage: int = Field(
        1, ge=0, le=3, description="DeepSpeed ZeRO stage: 0 off, 1 optimizer state, 2 + gradients, 3 + parameters "
        "partitioned across ranks")
    offload_optimizer: bool = Field(
        False, description="ZeRO-Offload of the optimizer state to CPU memory (needs zero_stage >= 1)")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 where the accelerator supports it, else fp32 | bf16 | fp32")
    grad_clip: float = Field(1.0, ge=0, description="gradient clipping: the largest global gradient L2 norm; 0: off")
    lr: float = Field(3e-4, gt=0, le=1, description="peak learning rate of AdamW, reached after warmup (at most 1: "
                      "AdamW moves each weight by about lr a step)")
    min_lr: float = Field(3e-5, ge=0, description="learning rate at the end of the cosine decay (at max_steps)")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay, on matrices only (not norms, biases)")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW beta1, beta2 (moment decay rates)")
    warmup_steps: int = Field(100, ge=0, description="optimizer steps of linear learning-rate warmup from 0")
    max_steps: int = Field(1000, ge=1, description="optimizer steps of the whole training")
    pipeline_stages: int = Field(
        1, ge=1, description="pipeline-parallel stages; > 1: a deepspeed.pipe.PipelineModule (pretraining only, "
        "zero_stage 0 or 1)")
    activation_checkpointing: bool = Field(
        False, description="recompute each transformer block's activations in the backward pass: less activation "
        "memory, more compute")
    compile: bool = Field(
        False, description="torch.compile each transformer block (worth it on GPUs; minutes of compiling on a CPU)")
    seed: int = Field(0, ge=0, lt=2 ** 32, description="seed of the weights' initialization, data order and "
                      "dropout (numpy's range: 0 to 2**32 - 1)")
    eval_every: int = Field(50, ge=1, description="optimizer steps between validation passes (and one at the end)")
    eval_batches: int = Field(8, ge=1, description="micro batches per rank in one validation pass")
    save_every: int = Field(100, ge=1, description="optimizer steps between checkpoints (and one at the end)")
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept; older ones are deleted")
    log_every: int = Field(1, ge=1, description="optimizer steps between metrics lines (metrics.jsonl, TensorBoard); "
                           "the RL stage writes every step (its report is built from them)")
    tensorboard: bool = Field(True, description="also write the metrics as TensorBoard events (tensorboard/)")
    peak_tflops: Optional[float] = Field(
        None, gt=0, description="peak TFLOP/s per device for MFU; null: a known GPU's dense bf16 peak, or measured "
        "on a CPU")
    export_hf: bool = Field(
        True, description="also write hf/: the final model in Hugging Face's layout (transformers, PEFT)")

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


#: Search at generation time holds this many sequences (and their KV caches) in one batch: at most
#: this many best-of-N samples (`llmpipe generate --best-of`, rl.best_of) and beams (`--num-beams`).
MAX_BEST_OF = 256
MAX_BEAMS = 64


class GenerateSection(Section):
    """A few continuations written to the stage's report, so a person can see what was learned."""

    prompts: list[str] = Field(
        default_factory=lambda: ["def ", "Return the", "The following"],
        description="prompts whose continuations the stage report shows")
    max_new_tokens: int = Field(48, ge=1, le=4096, description="tokens generated per prompt, at most")
    temperature: float = Field(0.0, ge=0, description="sampling temperature; 0: greedy")
    top_k: Optional[int] = Field(None, ge=1, description="sample among the k most likely tokens; null: all")
    top_p: Optional[float] = Field(
        None, gt=0, le=1, description="nucleus sampling: the smallest set of tokens with this total probability; "
        "null: all")


class PretrainSection(TrainSection):
    """Next-token pretraining on the pack stage's token files."""

    pipeline_parallel: ClassVar[bool] = True

    input: Optional[PathStr] = Field(
        None, description="pack stage folder with the token files; default: the run's 04-pack folder")
    tokenizer: Optional[PathStr] = Field(None, description="tokenizer folder; default: the run's 03-tokenizer folder")
    model: str = Field("tiny", description="model preset name in `presets` (packaged: tiny, 125m, 350m, 1b)")
    presets: Optional[PathStr] = Field(
        None, description="a YAML of your own model presets; default: the packaged training/models.yaml")
    model_overrides: dict[str, Any] = Field(
        default_factory=dict, description="changes to the preset, e.g. {position: alibi, n_layers: 2}")
    init_from: Optional[PathStr] = Field(
        None, description="a model folder (another run's final/) to continue pretraining from instead of random "
        "weights; its architecture is kept, so model_overrides must stay empty")
    generate: GenerateSection = Field(
        default_factory=GenerateSection, description="sample continuations written to the stage report")

    @model_validator(mode="after")
    def _one_architecture(self) -> "PretrainSection":
        if self.init_from and self.model_overrides:
            raise ValueError("model_overrides cannot change a model loaded with init_from (its architecture is the folder's)")
        return self


class AlignSection(TrainSection):
    """What every alignment stage (SFT, LoRA, reward, DPO) shares: the pretraining text on which
    forgetting is measured, before and after (training/forgetting.py)."""

    pretrain_data: Optional[PathStr] = Field(
        None, description="pack stage folder whose val split measures forgetting (and whose train split pretrain_mix "
        "draws from); default: the run's 04-pack, when there is one")
    forgetting_samples: int = Field(
        64, ge=0, description="pack val windows scored (pretraining loss) before and after training; 0: not measured")
    base: Optional[PathStr] = Field(
        None, description="model folder to start from; default: the `final` model of the run's `start_from` stage")
    start_from: Literal["pretrain", "sft"] = Field(
        "pretrain", description="the run's stage whose final model is the base when `base` is not set")


class PreferenceSection(AlignSection):
    """What the stages trained on preference pairs (reward model, DPO) share."""

    train_file: PathStr = Field(
        "data/demo/preferences/train.jsonl", description="training preference pairs, JSONL of {prompt, chosen, "
        "rejected}")
    heldout_file: Optional[PathStr] = Field(
        "data/demo/preferences/heldout.jsonl", description="held-out preference pairs for the held-out accuracy, "
        "rewards and margin; null: none")
    max_len: int = Field(
        256, ge=8, description="tokens per prompt + response, at most; longer pairs are cut from the left of the "
        "prompt")


class SFTSection(AlignSection):
    """Supervised fine-tuning of a trained model on conversations (see llmdata/chat.py)."""

    train_file: PathStr = Field("data/demo/sft/train.jsonl", description="training conversations, JSONL (llmdata/chat.py)")
    heldout_file: Optional[PathStr] = Field(
        "data/demo/sft/heldout.jsonl", description="held-out conversations for validation loss and exact match; "
        "null: none")
    seq_len: int = Field(
        256, ge=16, description="tokens per training window; conversations are packed into windows this long (with "
        "document masks)")
    train_on_prompt: bool = Field(False, description="loss on every token instead of the assistant turns only")
    eval_generate: int = Field(
        100, ge=0, description="held-out examples answered by greedy generation for exact match; 0: none")
    max_new_tokens: int = Field(32, ge=1, description="tokens generated per held-out answer, at most")
    # pretraining windows come from the pack train split, with the next-token loss on every token
    pretrain_mix: float = Field(
        0.0, ge=0, lt=1, description="share of training windows that are pretraining text (replay against "
        "forgetting, InstructGPT's pretraining mix); 0: conversations only")


class LoraSection(SFTSection):
    """SFT through low-rank adapters; the base weights stay frozen."""

    rank: int = Field(8, ge=1, description="LoRA rank r of the adapter matrices")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling alpha: the update is scaled by alpha / rank")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability on the adapter's input (B(A(dropout(x))))")
    targets: list[Literal["wq", "wk", "wv", "wo", "w1", "w2", "w3"]] = Field(
        default_factory=lambda: ["wq", "wk", "wv", "wo", "w1", "w2", "w3"], description="linear layers that get "
        "adapters: attention wq wk wv wo, MLP w1 w2 w3")
    # the chat template's special tokens by default: pretraining never saw them; any other text trains the rows
    # of its tokens
    train_tokens: list[Union[int, str]] = Field(
        default_factory=lambda: ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        description="tokens whose embedding (and tied output) rows train too, like PEFT's trainable_token_indices: a "
        "special token, a token id, or text")
    # what a base model whose output rows for those tokens are poor needs in order to say the answers at all
    train_answer_tokens: bool = Field(
        False, description="also train the embedding (and tied output) rows of every token the training answers "
        "contain")


class RewardSection(PreferenceSection):
    """A scalar reward head on a trained model, trained on preference pairs (Bradley-Terry)."""

    start_from: Literal["pretrain", "sft"] = Field(
        "pretrain", description="the run's stage whose final model is the base (InstructGPT starts from the SFT "
        "model)")
    margin: float = Field(
        0.0, ge=0, description="margin m of the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected - m)")
    center_coef: float = Field(
        0.0, ge=0, description="weight of the centering term (r_chosen + r_rejected)^2, which keeps rewards near 0")
    lm_coef: float = Field(
        0.0, ge=0, description="weight of the next-token loss on the chosen responses (GRM's regularizer)")


class DPOSection(PreferenceSection):
    """Direct preference optimization (Rafailov et al. 2023) of a trained model on preference
    pairs, against a frozen copy of itself as the reference."""

    base: Optional[PathStr] = Field(
        None, description="model folder to start from (also the frozen reference); default: the `final` model of the "
        "run's `start_from` stage")
    start_from: Literal["pretrain", "sft"] = Field(
        "sft", description="the run's stage whose final model is the base when `base` is not set")
    beta: float = Field(
        0.1, gt=0, description="DPO beta: strength of the pull towards the reference model (the KL penalty's weight)")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="conservative DPO: the share of pairs assumed mislabelled")
    # RPO (Pang et al. 2024) holds the chosen answers' likelihood up; the paper uses 1
    rpo_alpha: float = Field(
        0.0, ge=0, description="weight of the next-token loss on the chosen responses (RPO), a mean over the step's "
        "chosen tokens; 0: plain DPO")
    eval_file: Optional[PathStr] = Field(
        "data/demo/sft/heldout.jsonl", description="conversations answered greedily for exact match; null: none")
    eval_generate: int = Field(
        100, ge=0, description="held-out examples answered by greedy generation for exact match; 0: none")
    max_new_tokens: int = Field(32, ge=1, description="tokens generated per held-out answer, at most")


class RLRewards(Section):
    """The reward of a sampled completion: a weighted sum of sources (training/rewards.py)."""

    checker: float = Field(
        1.0, ge=0, description="weight of the verifiable checker: 1 when the answer equals the prompt's reference "
        "answer, else 0; 0: the checker only monitors (reward hacking)")
    reward_model: float = Field(
        0.0, ge=0, description="weight of the trained reward model's score (08-reward); 0: not used")
    reward_model_dir: Optional[PathStr] = Field(
        None, description="reward model folder; default: 08-reward/final beside the stage's output "
        "folder (the run's own unless --output puts RL elsewhere)")
    truncated: float = Field(
        0.0, ge=0, description="penalty subtracted from a completion cut at max_new_tokens (a format penalty)")
    per_token: float = Field(
        0.0, ge=0, description="penalty subtracted per completion token (a length penalty)")

    @model_validator(mode="after")
    def _some_reward(self) -> "RLRewards":
        if not (self.checker or self.reward_model):
            raise ValueError("rl.rewards: give the checker or the reward model a weight > 0 (no reward to learn from)")
        return self


class RLSection(AlignSection):
    """Online RL of a trained model with group-relative policy optimization (GRPO, Shao et al.
    2024) or RLOO, against a frozen copy of itself as the KL reference (training/rl_stage.py)."""

    base: Optional[PathStr] = Field(
        None, description="policy to start from (also the frozen KL reference); default: the `final` model of the "
        "run's `start_from` stage")
    start_from: Literal["pretrain", "sft"] = Field(
        "sft", description="the run's stage whose final model is the base when `base` is not set")
    train_file: PathStr = Field(
        "data/demo/sft/train.jsonl", description="prompts: conversations in an SFT format (each needs an assistant "
        "answer); the last assistant turn is the reference answer the checker compares with, the turns before it the "
        "prompt")
    heldout_file: Optional[PathStr] = Field(
        "data/demo/sft/heldout.jsonl", description="held-out conversations answered greedily for exact match before "
        "and after; null: none")
    group_size: int = Field(8, ge=2, description="completions G sampled per prompt (the group of GRPO's baseline)")
    advantage: Literal["grpo", "rloo"] = Field(
        "grpo", description="baseline: grpo = the group's mean reward; rloo = the mean of the other G-1 rewards")
    scale_rewards: Literal["std", "none"] = Field(
        "std", description="divide advantages by the group's reward standard deviation (std) or not (none, Dr. GRPO)")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="PPO clip range epsilon of the probability ratio")
    kl_coef: float = Field(
        0.04, ge=0, description="weight beta of the KL penalty to the reference (k3 estimator, per token)")
    kl_target: Optional[float] = Field(
        None, gt=0, description="the KL (nats per completion token) the run should stay under; the report says "
        "whether it did; null: no target")
    kl_control: Literal["fixed", "adaptive"] = Field(
        "fixed", description="fixed: the KL coefficient stays kl_coef; adaptive: it starts at kl_coef and moves each step "
        "towards holding the step's KL at kl_target (Ziegler et al. 2019; training/rl.py KLController)")
    kl_horizon: float = Field(
        10.0, gt=0, description="adaptive KL: optimizer steps over which the coefficient reacts (it changes by at most "
        "0.2 / kl_horizon of itself per step; 10 is Ziegler et al.'s K_beta = 0.1)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the completions")
    top_k: Optional[int] = Field(None, ge=1, description="sample from the k most likely tokens; null: all")
    top_p: Optional[float] = Field(None, gt=0, le=1, description="nucleus sampling mass; null: no truncation")
    max_new_tokens: int = Field(32, ge=1, description="tokens sampled per completion (and per held-out answer), "
                                "at most")
    rewards: RLRewards = Field(default_factory=RLRewards, description="the reward sources and their weights")
    eval_generate: int = Field(
        100, ge=0, description="held-out examples answered by greedy generation for exact match; 0: none")
    kl_heldout_samples: int = Field(
        4, ge=0, description="after training, the final policy's KL to the reference is measured on this many sampled "
        "completions of each of those held-out prompts (exact next-token KL); 0: not measured")
    best_of: int = Field(
        0, ge=0, le=MAX_BEST_OF, description="also measure best-of-N on the held-out prompts before training: N answers sampled from "
        "the starting policy, the reward model's favourite kept; 0: not measured")
    best_of_vote_temperature: float = Field(
        2.0, gt=0, description="best-of-N is also measured as a reward-weighted vote over the same N answers "
        "(identical answers pool exp(reward / this)); 2.0 chosen on the demo's held-out preference prompts")
    micro_batch: int = Field(4, ge=1, description="prompts per rank per forward pass (each with group_size "
                             "completions)")

    @model_validator(mode="after")
    def _gathered_weights(self) -> "RLSection":
        if self.zero_stage > 2:
            raise ValueError("rl samples its completions from the policy's whole weights on every rank: zero_stage "
                             f"0, 1 or 2 (got {self.zero_stage})")
        if self.kl_control == "adaptive" and (self.kl_target is None or not self.kl_coef > 0):
            raise ValueError("kl_control adaptive needs kl_target (the KL to hold) and kl_coef > 0 (where the coefficient "
                             f"starts); got kl_target {self.kl_target}, kl_coef {self.kl_coef}")
        return self
