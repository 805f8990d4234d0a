"""The RL stage (training/rl_stage.py): GRPO under the DeepSpeed engine with rollouts made in the
trainer's data path, per-step reward/KL metrics, exact resume, and one-line errors."""
import json

import pytest
import torch

from llmdata.sample_tasks import write_tasks
from pipelines.cli import main
from training.metrics import read_metrics
from training.rl_stage import sample_seed


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rl_tasks")
    write_tasks(str(folder), seed=0, train=40, heldout=10)
    return folder


@pytest.fixture(scope="module")
def reward_model(pretrained, tmp_path_factory):
    """A reward model folder (an untrained head on the pretrained model: any scores will do)."""
    from training.export import load_model
    from training.reward import RewardModel, save_reward_model
    from training.stage import complete_model_dir

    out = tmp_path_factory.mktemp("rm") / "final"
    torch.manual_seed(1)
    model = RewardModel(load_model(str(pretrained / "final")))
    save_reward_model(str(out), model.state_dict(), model.cfg)
    complete_model_dir(str(pretrained / "final"), str(out))
    return out


def rl_args(pretrained, prompts, out, *extra):
    return ["rl", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
            "--no-progress", "--set", f"rl.train_file={prompts / 'sft' / 'train.jsonl'}",
            "--set", f"rl.heldout_file={prompts / 'sft' / 'heldout.jsonl'}", "--set", "rl.group_size=4",
            "--set", "rl.max_new_tokens=6", "--set", "rl.eval_generate=4", "--set", "rl.tensorboard=false",
            "--set", "rl.export_hf=false", "--set", "rl.lr=1e-3", "--set", "rl.warmup_steps=0", "--set", "rl.best_of=0",
            *extra]


def train_rows(out) -> list[dict]:
    return [r for r in read_metrics(str(out / "metrics.jsonl")) if r["event"] == "train"]


def test_rl_with_the_reward_model_trains_reports_and_monitors_reward_hacking(pretrained, prompts, reward_model, tmp_path):
    out = tmp_path / "run" / "10-rl"
    assert main(rl_args(pretrained, prompts, out, "--set", "rl.max_steps=3", "--set", "rl.micro_batch=2",
                        "--set", "rl.rewards.checker=0", "--set", "rl.rewards.reward_model=1",
                        "--set", f"rl.rewards.reward_model_dir={reward_model}", "--set", "rl.rewards.truncated=0.5",
                        "--set", "rl.best_of=3")) == 0
    rows = train_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:  # every step says what the rollouts got
        assert {"mean_reward_reward_model", "mean_reward_length_format", "mean_reward_total", "mean_reward_checker",
                "kl", "clip_fraction", "completion_tokens", "truncated_fraction", "zero_variance_groups",
                "reward_errors"} <= set(r)
        assert 1 <= r["completion_tokens"] <= 6 and r["reward_errors"] == 0
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy starts as the reference
    assert rows[-1]["kl"] > 0 and rows[-1]["kl_k3"] > 0  # and moves away from it, measured both ways
    manifest = json.loads((out / "manifest.json").read_text())
    summary = manifest["summary"]  # fewer than 10 steps: the window is the whole run
    assert summary["kl_max_10_steps"] == pytest.approx(sum(r["kl"] for r in rows) / 3)
    assert summary["kl_heldout"] > 0  # the trained policy, measured on the held-out prompts
    assert manifest["rewards"] == {"sources": {"reward_model": 1.0, "length_format": 1.0}, "monitors": ["checker"]}
    assert manifest["exact_match"]["after"]["n"] == 4 and manifest["inputs"]["reward_model"]
    after = manifest["exact_match"]["after"]  # held-out prompts checked against the RL prompts
    assert after["in_training"] + after["unseen"]["n"] == 4 and "unseen" in manifest["exact_match"]["best_of_n_before"]["max"]
    best_of = manifest["exact_match"]["best_of_n_before"]  # best-of-3 beside greedy, chosen both ways
    assert best_of["max"]["n"] == best_of["vote"]["n"] == 4
    assert manifest["summary"]["best_of_n_vote_exact_match"] == best_of["vote"]["exact_match"]
    assert manifest["counts"] == {"input": 45, "used": 40, "bad": manifest["counts"]["bad"]}
    report = (out / "report.md").read_text()
    assert "Rollouts and rewards" in report and "reward hacking" in report and "mean reward reward model" in report
    from pipelines.run_report import build

    _, sections = build(str(tmp_path / "run"))  # the run report shows the stage
    (rl,) = [s for s in sections if s.title.startswith("RL (GRPO)")]
    assert rl.blocks[0][2][0][2] == f"{100 * manifest['exact_match']['after']['exact_match']:.1f}%"
    assert any(b[0] == "p" and "Best-of-N" in b[1] for b in rl.blocks)


def test_reward_model_inputs_longer_than_it_takes_are_counted_per_step(pretrained, prompts, reward_model, tmp_path):
    """Prompts of ~800 tokens do not fit the 512-token reward model with their answers: each
    completion is scored cut (as its training pairs were cut) and counted, in the step's metrics
    and the report, not silently."""
    long = tmp_path / "long.jsonl"
    long.write_text("".join(json.dumps({"prompt": f"Repeat: {'file list ' * 400}{w}", "completion": w}) + "\n"
                            for w in ("file", "list")))
    out = tmp_path / "10-rl"
    assert main(rl_args(pretrained, prompts, out, "--set", "rl.max_steps=1", "--set", "rl.micro_batch=2",
                        "--set", f"rl.train_file={long}", "--set", "rl.rewards.reward_model=1",
                        "--set", f"rl.rewards.reward_model_dir={reward_model}",
                        "--set", "rl.kl_heldout_samples=0", "--set", "rl.forgetting_samples=0")) == 0
    (row,) = train_rows(out)
    assert row["reward_model_cut"] == 8 and row["reward_errors"] == 0  # 2 prompts x group_size 4
    assert "| completions the reward model scored on a shortened input (all steps) | 8 |" in (out / "report.md").read_text()


def test_resume_and_another_micro_batch_split_give_the_same_rollouts(pretrained, prompts, reward_model, tmp_path,
                                                                    monkeypatch):
    """Completions are drawn per (seed, step, prompt): a run stopped at step 2 and resumed, and a
    run with the same global batch in two micro batches, reward and lose exactly as one run. The
    adaptive KL coefficient (a target it is always over, so it grows every step) is in the
    checkpoint: the resumed run continues with the coefficient the whole run had."""
    common = ["--set", "rl.max_steps=4", "--set", "rl.rewards.checker=0", "--set", "rl.rewards.reward_model=1",
              "--set", f"rl.rewards.reward_model_dir={reward_model}", "--set", "rl.save_every=2",
              "--set", "rl.kl_control=adaptive", "--set", "rl.kl_target=1e-9", "--set", "rl.kl_horizon=1",
              "--set", "rl.kl_coef=0.5"]
    whole, resumed, split = tmp_path / "whole", tmp_path / "resumed", tmp_path / "split"
    assert main(rl_args(pretrained, prompts, whole, *common, "--set", "rl.micro_batch=2")) == 0
    assert main(rl_args(pretrained, prompts, resumed, *common, "--set", "rl.micro_batch=2", "--until-step", "2")) == 0
    assert not (resumed / "manifest.json").exists()
    assert main(rl_args(pretrained, prompts, resumed, *common, "--set", "rl.micro_batch=2")) == 0
    # ... and the reference's log-probs and the exact KL one completion at a time (memory-bounded chunks)
    monkeypatch.setattr("training.rl_stage._KL_CHUNK_ELEMENTS", 1)
    assert main(rl_args(pretrained, prompts, split, *common, "--set", "rl.micro_batch=1", "--set", "rl.grad_accum=2")) == 0
    keys = ("loss", "mean_reward_total", "mean_reward_checker", "kl", "kl_k3", "completion_tokens", "kl_coef")
    expected = [[r[k] for k in keys] for r in train_rows(whole)]
    assert len(expected) == 4 and len({e[1] for e in expected}) > 1  # the rewards change: a real comparison
    # step 1's KL is 0 (the policy is the reference): beta falls by 20%, then grows by 20% a step
    assert [e[-1] for e in expected] == pytest.approx([0.5, 0.4, 0.48, 0.576])
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert manifest["summary"]["kl_coef_final"] == pytest.approx(0.576 * 1.2)
    assert "KL coefficient (adaptive" in (resumed / "report.md").read_text()
    assert [[r[k] for k in keys] for r in train_rows(resumed) if r["step"] > 2] == expected[2:]
    for got, want in zip(([r[k] for k in keys] for r in train_rows(split)), expected):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("setting, says", [
    ("rl.group_size=1", "rl.group_size"),
    ("rl.kl_coef=-0.1", "rl.kl_coef"),
    ("rl.zero_stage=3", "zero_stage 0, 1 or 2"),
    ("rl.kl_control=pid", "rl.kl_control"),
    ("rl.kl_horizon=0", "rl.kl_horizon"),
    ("rl.kl_control=adaptive rl.kl_target=null", "kl_control adaptive needs kl_target"),
    ("rl.kl_control=adaptive rl.kl_coef=0", "kl_control adaptive needs kl_target"),
    ("rl.rewards.checker=0", "give the checker or the reward model a weight"),
    ("rl.rewards.reward_model=1", "reward model for rl.rewards.reward_model / rl.best_of (model.safetensors) not found"),
])
def test_bad_rl_settings_are_one_line(pretrained, prompts, tmp_path, capsys, setting, says):
    code = main(rl_args(pretrained, prompts, tmp_path / "rl", *(a for kv in setting.split() for a in ("--set", kv)),
                        "--set", f"rl.rewards.reward_model_dir={tmp_path / 'nowhere'}"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and "\n" not in err
    assert not (tmp_path / "rl").exists()


def test_an_output_folder_the_stage_would_destroy_is_refused_in_one_line(pretrained, prompts, tmp_path, capsys):
    """Another stage's finished folder, or the folder the base model lies in, is not an RL output:
    starting over would move it aside and delete it when RL finished."""
    import shutil

    other = tmp_path / "08-reward"
    shutil.copytree(pretrained, other)  # a finished stage folder (its manifest says pretrain)
    sft = tmp_path / "06-sft"
    shutil.copytree(pretrained / "final", sft / "final")
    shutil.copytree(pretrained / "final", tmp_path / "10-rl.previous" / "final")  # a finished run set aside
    aside = tmp_path / "10-rl.previous" / "final"
    for base, out, says in ((pretrained / "final", other, f"output {other} holds the pretrain stage's output"),
                            (sft / "final", sft, f"output {sft} would delete this stage's base input ({sft / 'final'}/*)"),
                            (aside, tmp_path / "10-rl", f"would delete this stage's base input ({aside}/*)")):
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        args = rl_args(pretrained, prompts, out)
        args[args.index("--base") + 1] = str(base)
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and "\n" not in err, err
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_prompt_file_with_no_usable_row_is_one_line(pretrained, tmp_path, capsys):
    rows = tmp_path / "p.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "a question and no answer"}]}\nnot json\n')
    code = main(["rl", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output",
                 str(tmp_path / "rl"), "--set", f"rl.train_file={rows}", "--set", "rl.heldout_file=null",
                 "--set", "rl.best_of=0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"llmpipe: error: rl: no usable prompt in {rows} (2 bad rows)"


def test_a_heldout_file_with_no_usable_row_is_one_line(pretrained, prompts, tmp_path, capsys):
    held = tmp_path / "held.jsonl"
    held.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\nnot json\n')
    code = main(rl_args(pretrained, prompts, tmp_path / "rl", "--set", f"rl.heldout_file={held}"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"llmpipe: error: rl: no usable conversation in rl.heldout_file {held} (2 bad rows); "
                                 "fix it, or set rl.heldout_file: null")


def test_bad_rows_of_both_files_are_listed_with_their_lines(pretrained, prompts, tmp_path):
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    good = [json.dumps({"messages": [{"role": "user", "content": f"Repeat: {w}"}, {"role": "assistant", "content": w}]})
            for w in ("file path", "code line", "name data")]
    train.write_text("\n".join([good[0], '{"messages": [{"role": "assistant", "content": "x"}]}', good[1],
                                '{"messages": [{"role": "robot", "content": "x"}]}', good[2]]) + "\n")
    held.write_text(good[0] + '\n[1, 2]\n{"prompt": "", "completion": "x"}\n')
    out = tmp_path / "rl"
    assert main(rl_args(pretrained, prompts, out, "--set", f"rl.train_file={train}", "--set", f"rl.heldout_file={held}",
                        "--set", "rl.max_steps=1", "--set", "rl.micro_batch=2")) == 0
    bad = [json.loads(line) for line in (out / "bad_rows.jsonl").read_text().splitlines()]
    assert [(b["file"], b["line"]) for b in bad] == [(str(train), 2), (str(train), 4), (str(held), 2), (str(held), 3)]
    assert bad[0]["reason"] == "no prompt to ask: no text before the assistant's answer" and '"robot"' in bad[1]["raw"]
    report = (out / "report.md").read_text()
    assert "bad rows: messages: each message needs a role" in report  # the whole reason, not its first word
    assert "| held-out bad rows | 2 |" in report


def test_sample_seeds_differ_by_step_and_prompt_and_not_by_anything_else():
    seeds = {sample_seed(0, step, prompt) for step in range(20) for prompt in range(50)}
    assert len(seeds) == 1000 and all(0 <= s < 2 ** 63 for s in seeds)
    assert sample_seed(3, 1, 2) == sample_seed(3, 1, 2) != sample_seed(4, 1, 2)


def test_two_ranks_agree_with_one_at_the_same_global_batch(pretrained, prompts, reward_model, tmp_path):
    """Two CPU ranks under the deepspeed launcher, one prompt each per step, sample, reward and
    lose as one rank with both prompts: a completion's randomness belongs to its prompt and step."""
    from tests.test_pretrain import _launch

    common = ["--set", "rl.max_steps=2", "--set", "rl.rewards.checker=0", "--set", "rl.rewards.reward_model=1",
              "--set", f"rl.rewards.reward_model_dir={reward_model}", "--set", "rl.eval_generate=0"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(rl_args(pretrained, prompts, one, *common, "--set", "rl.micro_batch=2")) == 0
    _launch(rl_args(pretrained, prompts, two, *common, "--set", "rl.micro_batch=1"))
    keys = ("loss", "mean_reward_total", "kl", "completion_tokens", "zero_variance_groups")
    for got, want in zip(train_rows(two), train_rows(one), strict=True):
        assert [got[k] for k in keys] == pytest.approx([want[k] for k in keys], rel=1e-4, abs=1e-6)


def test_a_reward_model_that_fails_on_every_completion_stops_the_stage_in_one_line(pretrained, prompts, reward_model,
                                                                                   tmp_path, capsys, monkeypatch):
    from training.rewards import RewardModelScorer

    def broken(self, items):
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(RewardModelScorer, "__call__", broken)
    code = main(rl_args(pretrained, prompts, tmp_path / "rl", "--set", "rl.max_steps=2", "--set", "rl.micro_batch=2",
                        "--set", "rl.rewards.checker=0", "--set", "rl.rewards.reward_model=1",
                        "--set", f"rl.rewards.reward_model_dir={reward_model}"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err == ("llmpipe: error: rl: the reward source 'reward_model' failed on all 8 completions of the rollout of "
                   "step 1; the first: RuntimeError: Expected all tensors to be on the same device")


@pytest.mark.parametrize("checker_role", ["reward", "monitor"])
def test_a_checker_that_fails_on_some_completions_gives_error_rows_and_the_run_goes_on(pretrained, prompts, reward_model,
                                                                                      tmp_path, monkeypatch, checker_role):
    """The issue's "a checker that fails on one sample gives a clear error row, not a crashed
    stage": the rows (prompt, completion, source, one-line reason) are in each step's metrics and
    the first ten in the report, and counted, whether the checker is the reward or only watches
    the reward model's run; the stage completes."""
    import itertools

    from training import rl_stage
    from training.rewards import exact_match_reward

    calls = itertools.count()

    def flaky(items):
        if len(items) > 1:
            raise RuntimeError("a batch: score one at a time")
        if next(calls) % 2 == 0:
            raise RuntimeError("the checker's service timed out\nretry later")
        return exact_match_reward(items)

    monkeypatch.setattr(rl_stage, "exact_match_reward", flaky)
    out = tmp_path / "rl"
    role = [] if checker_role == "reward" else ["--set", "rl.rewards.checker=0", "--set", "rl.rewards.reward_model=1",
                                                "--set", f"rl.rewards.reward_model_dir={reward_model}"]
    # log_every 2: the stage still records every step, which its whole-run figures count
    assert main(rl_args(pretrained, prompts, out, "--set", "rl.max_steps=2", "--set", "rl.micro_batch=2",
                        "--set", "rl.log_every=2", *role)) == 0
    rows = train_rows(out)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:  # 2 prompts x 4 completions a step, every other one failing
        assert r["reward_errors"] == 4 and len(r["reward_error_rows"]) == 4
        for row in r["reward_error_rows"]:
            assert row["source"] == "checker" and row["reason"] == "RuntimeError: the checker's service timed out"
            assert row["prompt"] and set(row) == {"prompt", "completion", "source", "reason"}
    report = (out / "report.md").read_text()
    assert "Reward errors: the first 10" in report and report.count("| step 1, checker (") == 4
    assert "| reward errors (all steps) | 8 |" in report


def test_scoring_with_a_language_model_folder_is_one_line(pretrained, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "What is 3 + 4?", "response": "7"}\n')
    code = main(["reward", "score", "--model", str(pretrained / "final"), "--input", str(rows)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"llmpipe: error: {pretrained / 'final'} is a language model, not a reward model (no reward head)"
