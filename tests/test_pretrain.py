"""The pretraining stage on real packed data: loss falls, exact resume, several ranks, pipeline.

Every run here is a real DeepSpeed engine on CPU (gloo) training a small model for a few steps.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelines.cli import main
from tests.conftest import pretrain_args, train_losses
from training.metrics import read_metrics


def test_loss_falls_and_the_stage_writes_its_products(pretrained, capsys):
    metrics = read_metrics(str(pretrained / "metrics.jsonl"))
    train = [r["loss"] for r in metrics if r["event"] == "train"]
    evals = [r for r in metrics if r["event"] == "eval"]
    assert len(train) == 30 and [r["step"] for r in evals] == [10, 20, 30]
    assert sum(train[-5:]) / 5 < train[0] - 0.5  # from ln(800) = 6.68, the uniform guess
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert evals[-1]["val_ppl"] == pytest.approx(math.exp(evals[-1]["val_loss"]))
    assert all(r["tokens_per_s"] > 0 and r["mfu"] > 0 for r in metrics if r["event"] == "train")
    manifest = json.loads((pretrained / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"]["steps"] == 30
    for name in ("final/model.safetensors", "final/model_config.json", "final/tokenizer.json", "loss.png", "report.md"):
        assert (pretrained / name).stat().st_size > 0, name
    assert list((pretrained / "tensorboard").glob("events.out.tfevents.*"))
    report = (pretrained / "report.md").read_text()
    assert "MFU" in report and "![loss](loss.png)" in report and "## Samples" in report
    assert sorted(p.name for p in (pretrained / "checkpoints").glob("step_*")) == ["step_0000020", "step_0000030"]


def test_exported_weights_give_the_trainers_validation_loss(pretrained, packed):
    """The safetensors export is the trained model: its loss on the validation batches the trainer
    evaluated equals the val loss the trainer logged."""
    from training.data import PackedDataset
    from training.export import load_model
    from training.loop import causal_lm_loss, stack

    model = load_model(str(pretrained / "final")).eval()
    val = PackedDataset(str(packed[0]), "val")
    total = count = 0.0
    with torch.no_grad():
        for start in range(0, min(len(val), 8 * 4), 4):  # eval_batches 8 x micro_batch 4, wrapping
            s, c = causal_lm_loss(model, stack([val[(start + i) % len(val)] for i in range(4)]))
            total, count = total + float(s), count + float(c)
    logged = [r for r in read_metrics(str(pretrained / "metrics.jsonl")) if r["event"] == "eval"][-1]["val_loss"]
    assert total / count == pytest.approx(logged, rel=1e-5)


def test_a_finished_stage_is_skipped(pretrained, packed, capsys):
    assert main(pretrain_args(packed, pretrained, "--set", "pretrain.max_steps=30", "--set", "pretrain.micro_batch=4",
                              "--set", "pretrain.eval_every=10", "--set", "pretrain.save_every=10",
                              "--set", "pretrain.tensorboard=true")) == 0
    assert "up to date" in capsys.readouterr().out


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(packed, tmp_path):
    common = ["--set", "pretrain.max_steps=6", "--set", "pretrain.micro_batch=2", "--set", "pretrain.eval_every=3",
              "--set", "pretrain.save_every=100"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(pretrain_args(packed, straight, *common)) == 0
    assert main(pretrain_args(packed, stopped, *common, "--until-step", "3")) == 0
    assert not (stopped / "manifest.json").exists() and (stopped / "checkpoints" / "step_0000003").is_dir()
    assert main(pretrain_args(packed, stopped, *common)) == 0  # resumes at step 3
    assert train_losses(stopped) == train_losses(straight)  # bit for bit, every step
    from safetensors.torch import load_file

    a, b = load_file(straight / "final" / "model.safetensors"), load_file(stopped / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((stopped / "manifest.json").read_text())["summary"]["resumed_from"] == 3


def test_an_unreadable_checkpoint_is_passed_over_for_the_one_before(packed, tmp_path, capsys):
    """A checkpoint cut short after `latest` was written (a full disk, a lost file) resumes from
    the checkpoint before it, still exactly; none readable is one line, not a traceback, and so
    is a resume with another number of ranks."""
    common = ["--set", "pretrain.max_steps=4", "--set", "pretrain.micro_batch=2", "--set", "pretrain.eval_every=4"]
    straight, stopped, torn = tmp_path / "straight", tmp_path / "stopped", tmp_path / "torn"
    assert main(pretrain_args(packed, straight, *common)) == 0
    assert main(pretrain_args(packed, stopped, *common, "--set", "pretrain.save_every=2", "--until-step", "3")) == 0
    shutil.copytree(stopped, torn)
    for folder, tags in ((stopped, ["step_0000003"]), (torn, ["step_0000002", "step_0000003"])):
        for tag in tags:
            os.truncate(folder / "checkpoints" / tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt", 100)
    capsys.readouterr()
    assert main(pretrain_args(packed, stopped, *common, "--set", "pretrain.save_every=2")) == 0
    said = capsys.readouterr().out
    assert "checkpoint step_0000003 cannot be read" in said and "at step 2" in said
    assert train_losses(stopped) == train_losses(straight)
    assert main(pretrain_args(packed, torn, *common, "--set", "pretrain.save_every=2")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmpipe: error: no readable checkpoint in") and "--force starts over" in err and "\n" not in err
    (torn / "checkpoints" / "layout.json").write_text('{"ranks": 2, "data_parallel": 2}')  # as if from --nproc 2
    assert main(pretrain_args(packed, torn, *common, "--set", "pretrain.save_every=2")) == 2
    err = capsys.readouterr().err.strip()
    assert "were written by 2 rank(s) (2 data-parallel); this run has 1 (1)" in err and "\n" not in err


def test_changed_config_starts_over_instead_of_resuming(packed, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(pretrain_args(packed, out, "--set", "pretrain.max_steps=4", "--set", "pretrain.micro_batch=2",
                              "--until-step", "2")) == 0
    assert main(pretrain_args(packed, out, "--set", "pretrain.max_steps=4", "--set", "pretrain.micro_batch=2",
                              "--set", "pretrain.lr=1e-3", "--until-step", "3")) == 0
    assert "starting over" in capsys.readouterr().out
    assert sorted(train_losses(out)) == [1, 2, 3]


def test_missing_input_is_one_line(tmp_path, capsys):
    code = main(["pretrain", "--input", str(tmp_path / "nope"), "--tokenizer", str(tmp_path), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("llmpipe: error: packed data") and "\n" not in err


def _damage_shards_json(pack):
    info = json.loads((pack / "shards.json").read_text())
    (pack / "shards.json").write_text(json.dumps({**info, "eot_id": info["eot_id"] - 1}))


@pytest.mark.parametrize("damage, says", [
    (lambda pack: os.truncate(pack / "train-00000.bin", 100), "train-00000.bin is truncated: 100 bytes"),
    (lambda pack: os.truncate(pack / "train-00000.idx", 40), "train-00000.idx is truncated"),
    (lambda pack: (pack / "train-00000.plan.npz").write_bytes(b"PK junk"), "train-00000.plan.npz is not a packing plan"),
    (lambda pack: shutil.copy(pack / "val-00000.plan.npz", pack / "train-00000.plan.npz"), "train-00000.plan.npz: the plan"),
    (_damage_shards_json, "was packed with another tokenizer"),
    (lambda pack: (pack / "shards.json").write_text("{not json"), "shards.json is not a pack stage's shards.json (JSONDecodeError"),
    (lambda pack: (pack / "shards.json").write_text('{"seq_len": 128}'), "shards.json (KeyError: 'pad_id')"),
])
def test_damaged_or_mismatched_packed_data_is_one_line_and_clears_no_checkpoints(packed, tmp_path, capsys, damage, says):
    """Checked before training and before the stage folder is touched: the checkpoints of an
    earlier run (with other inputs, so a good run would start over) are still there after the error."""
    pack = tmp_path / "pack"
    shutil.copytree(packed[0], pack)
    damage(pack)
    out = tmp_path / "o"
    (out / "checkpoints" / "step_5").mkdir(parents=True)
    (out / "checkpoints" / "fingerprint").write_text("an earlier run's")
    code = main(pretrain_args((pack, packed[1]), out))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("llmpipe: error: ") and says in err and "\n" not in err
    assert (out / "checkpoints" / "step_5").is_dir() and not (out / "metrics.jsonl").exists()


@pytest.mark.parametrize("overrides, says", [("{norm: weird}", "norm must be one of pre, post, deepnorm"),
                                             ("{n_layer: 2}", "unexpected keyword argument 'n_layer'")])
def test_a_wrong_model_override_is_one_line(packed, tmp_path, capsys, overrides, says):
    """A typo in model_overrides stops the stage with one line, not a traceback, and never trains
    some other model."""
    code = main(pretrain_args(packed, tmp_path / "o", "--set", f"pretrain.model_overrides={overrides}"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("llmpipe: error: pretrain.model") and says in err and "\n" not in err
    assert not (tmp_path / "o" / "metrics.jsonl").exists()


def _fresh_env() -> dict:
    """A new process's environment, as a user's shell gives it: without the rendezvous settings
    that this test process's in-process training left behind."""
    rendezvous = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    return {**{k: v for k, v in os.environ.items() if k not in rendezvous}, "PYTHONPATH": os.getcwd()}


def _launch(args: list[str]) -> None:
    """`llmpipe ... --nproc 2`: re-launched under the deepspeed launcher, two CPU ranks (gloo)."""
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", *args, "--nproc", "2"], capture_output=True, text=True,
                          env=_fresh_env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _signal_mid_training(args: list[str], out, signum: int) -> tuple[int, str]:
    """Start `llmpipe` in a new process, send it `signum` once two steps are logged, and return its
    exit code and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_fresh_env())
    deadline = time.time() + 300
    try:
        while not (out / "metrics.jsonl").exists() or len(train_losses(out)) < 2:
            assert proc.poll() is None and time.time() < deadline, "no training steps to interrupt"
            time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("ranks, signum", [(1, signal.SIGUSR1), (2, signal.SIGTERM)])
def test_a_signal_checkpoints_the_step_and_stops(packed, tmp_path, ranks, signum):
    """A scheduler's SIGTERM (or Slurm's SIGUSR1 warning) is not a kill: the step finishes, every rank
    checkpoints that same step, `llmpipe` exits with 128 + the signal's number, no rank is left
    running (with --nproc the signal reaches the launcher's ranks), and the next run resumes there."""
    out = tmp_path / "o"
    args = pretrain_args(packed, out, "--set", "pretrain.max_steps=100000", "--set", "pretrain.log_every=1",
                         "--set", "pretrain.eval_every=100000", "--set", "pretrain.save_every=100000",
                         *(["--nproc", "2"] if ranks > 1 else []))
    code, err = _signal_mid_training(args, out, signum)
    step = max(train_losses(out))
    assert code == 128 + signum, err[-3000:]
    assert f"stopped by {signal.Signals(signum).name} at step {step} of 100000" in err
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step_{step:07d}"
    import psutil

    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    if ranks == 1:  # (two ranks resume the same way, through the launcher)
        resumed = subprocess.run([sys.executable, "-m", "pipelines.cli", *args, "--until-step", str(step + 1)],
                                 capture_output=True, text=True, env=_fresh_env(), timeout=300)
        assert f"at step {step}" in resumed.stdout and resumed.returncode == 0, resumed.stderr[-2000:]


def test_two_ranks_agree_with_one_rank_at_the_same_global_batch(packed, tmp_path):
    common = ["--set", "pretrain.max_steps=4", "--set", "pretrain.micro_batch=2", "--set", "pretrain.eval_every=4",
              "--set", "pretrain.zero_stage=2"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(pretrain_args(packed, one, *common, "--set", "pretrain.grad_accum=2")) == 0
    _launch(pretrain_args(packed, two, *common, "--set", "pretrain.grad_accum=1"))
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["summary"]["ranks"] == 2 and manifest["summary"]["global_batch"] == 4
    a, b = train_losses(one), train_losses(two)
    assert list(a) == list(b) == [1, 2, 3, 4]
    assert list(b.values()) == pytest.approx(list(a.values()), rel=1e-5)


def test_two_stage_pipeline_on_two_ranks_trains_like_the_plain_model(packed, pretrained, tmp_path):
    """Continued from the same weights (`init_from`), a 2-stage pipeline on two CPU ranks has the
    plain model's losses on one rank, step for step, and its validation loss (tied embedding and
    head included); its per-layer weights export as the same `Transformer`."""
    from safetensors.torch import load_file

    # one sequence a micro batch, and the whole validation split (its last sequences are part padding):
    # a pipeline that averaged batch means instead of weighting by tokens would show here
    common = ["--set", "pretrain.max_steps=6", "--set", "pretrain.micro_batch=1", "--set", "pretrain.grad_accum=4",
              "--set", "pretrain.eval_batches=100", "--set", "pretrain.eval_every=3",
              "--set", "pretrain.zero_stage=1", "--set", "pretrain.model_overrides={}",
              "--set", f"pretrain.init_from={pretrained / 'final'}"]
    pipe, plain = tmp_path / "pipe", tmp_path / "plain"
    _launch(pretrain_args(packed, pipe, *common, "--set", "pretrain.pipeline_stages=2"))
    assert main(pretrain_args(packed, plain, *common)) == 0
    assert len(train_losses(pipe)) == 6 and train_losses(pipe) == pytest.approx(train_losses(plain), rel=1e-5)

    def evals(out):
        return [r["val_loss"] for r in read_metrics(str(out / "metrics.jsonl")) if r["event"] == "eval"]

    assert len(evals(pipe)) == 2 and evals(pipe) == pytest.approx(evals(plain), rel=1e-5)
    a, b = load_file(pipe / "final" / "model.safetensors"), load_file(plain / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_init_from_a_model_that_does_not_fit_is_one_line(packed, pretrained, tmp_path, capsys):
    from training.export import save_model
    from training.model import ModelConfig, Transformer

    other = tmp_path / "other"
    cfg = ModelConfig(vocab_size=97, d_model=32, n_layers=1, n_heads=2, n_kv_heads=2, max_seq_len=256)
    save_model(str(other), Transformer(cfg).state_dict(), cfg)
    for extra, says in (([f"pretrain.init_from={other}", "pretrain.model_overrides={}"], "has vocabulary 97"),
                        ([f"pretrain.init_from={pretrained / 'final'}"], "model_overrides cannot change a model loaded")):
        code = main(pretrain_args(packed, tmp_path / "o", *[a for kv in extra for a in ("--set", kv)]))
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("llmpipe: error: ") and says in err and "\n" not in err


def test_generate_command_continues_and_answers_prompts(pretrained, tmp_path, capsys):
    """`llmpipe generate` gives the model's own greedy continuation, the same samples for the same
    seed, chat answers through the template, and an error line (with its line number) for each
    row it cannot use."""
    from llmdata.tokenizer_io import BPETokenizer
    from training.export import load_model

    final = str(pretrained / "final")
    capsys.readouterr()
    assert main(["generate", "--model", final, "--prompt", "def ", "--prompt", "", "--max-new-tokens", "6"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model, tok = load_model(final), BPETokenizer.load(final)
    ids = tok.encode("def ")
    expected = [int(t) for t in model.generate(torch.tensor([ids]), 6, eos_id=tok.eot_id)[0, len(ids):]]
    expected = expected[: expected.index(tok.eot_id)] if tok.eot_id in expected else expected
    assert rows[0] == {"prompt": "def ", "completion": tok.decode(expected)} and rows[1]["prompt"] == ""

    sampled = ["generate", "--model", final, "--prompt", "Return", "--temperature", "1.0", "--top-k", "20", "--top-p", "0.9",
               "--max-new-tokens", "8"]
    outs = []
    for seed in ("1", "1", "2"):
        assert main([*sampled, "--seed", seed]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]

    rows_file = tmp_path / "prompts.jsonl"
    rows_file.write_bytes(b'{"prompt": "What is 3 + 4?"}\nnot json\n\n{"prompt": 5}\n'
                          b'{"prompt": [{"role": "user", "content": "Hi"}]}\n{"prompt": [{"role": "robot", "content": "x"}]}\n'
                          b'{"prompt": "caf\xe9"}\n')  # Latin-1, not UTF-8: an error row, not a silently altered prompt
    out = tmp_path / "answers.jsonl"
    assert main(["generate", "--model", final, "--chat", "--input", str(rows_file), "--output", str(out), "--max-new-tokens", "4"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in got] == [1, 2, 4, 5, 6, 7]
    assert [("error" in r) for r in got] == [False, True, True, False, True, True]
    assert "invalid UTF-8 at byte 15" in got[-1]["error"]
    assert isinstance(got[0]["completion"], str) and "generate: 6 prompts (4 bad)" in capsys.readouterr().out
    assert main(["generate", "--model", final, "--input", str(rows_file), "--max-new-tokens", "2"]) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "needs --chat" in plain[3]["error"]  # a list of messages without the chat template


def test_generate_answers_the_sft_formats_rows_with_their_reference(pretrained, tmp_path, capsys):
    """With --chat, `generate --input` reads every SFT format (the demo's own held-out file mixes
    them): the turns before the last assistant turn are the prompt and that turn comes back as
    "reference"; a conversation ending with a user turn is answered as it stands."""
    from llmdata.chat import ChatTemplate
    from llmdata.tokenizer_io import BPETokenizer
    from training.export import load_model

    final = str(pretrained / "final")
    user = [{"role": "user", "content": "What is 3 + 4?"}]
    rows = [{"prompt": "What is 3 + 4?"},
            {"messages": [*user, {"role": "assistant", "content": "7"}], "task": "add"},
            {"messages": user},
            {"instruction": "What is 3 + 4?", "output": "7"},
            {"instruction": "What is", "input": "3 + 4?"},
            {"prompt": "What is 3 + 4?", "completion": "7"},
            {"messages": [{"role": "assistant", "content": "7"}]},
            {"text": "What is 3 + 4?"},
            {"instruction": "What is 3 + 4?", "output": 7}]
    rows_file = tmp_path / "heldout.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "answers.jsonl"
    assert main(["generate", "--model", final, "--chat", "--input", str(rows_file), "--output", str(out),
                 "--max-new-tokens", "5"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in got] == list(range(1, 10))
    answer = got[0]["completion"]
    for r in got[1:4] + got[5:6]:  # the same question in four formats: the same greedy answer
        assert r["completion"] == answer and "error" not in r
    assert got[1]["prompt"] == user and got[2]["prompt"] == user and got[3]["prompt"] == user
    assert [r.get("reference") for r in got[:6]] == [None, "7", None, "7", None, "7"]
    assert got[4]["prompt"] == [{"role": "user", "content": "What is\n\n3 + 4?"}]
    assert "no turn before the assistant's answer" in got[6]["error"]
    assert 'no "prompt", "messages" or Alpaca "instruction"' in got[7]["error"]
    assert "output is not a string" in got[8]["error"]
    assert "generate: 9 prompts (3 bad)" in capsys.readouterr().out
    assert main(["generate", "--model", final, "--input", str(rows_file), "--max-new-tokens", "2"]) == 0
    plain = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 'needs --chat' in plain[1]["error"] and "error" not in plain[0]

    # a "prompt" list is read as "messages" is, and "messages" wins over "prompt", as SFT reads rows
    two = [*user, {"role": "assistant", "content": "7"}]
    odd = [{"prompt": two}, {"prompt": "What is 1 + 1?", "messages": two},
           {"instruction": "What is 3 + 4?", "output": "7", "prompt": "What is 1 + 1?"},
           {"prompt": "What is 3 + 4?", "completion": 7}, {"prompt": []}, {"prompt": [{"role": "tool", "content": "x"}]},
           {"prompt": "What is 3 + 4?", "completion": "\ud800"}]
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in odd) + '{"prompt": ' + "[" * 100_000 + "]" * 100_000
                         + "}\n" + '{"prompt": "x", "n": ' + "9" * 5000 + "}\n\ufeff{}\n")
    assert main(["generate", "--model", final, "--chat", "--input", str(rows_file), "--output", str(out),
                 "--max-new-tokens", "5"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    for r in got[:3]:
        assert (r["prompt"], r["completion"], r["reference"]) == (user, answer, "7")
    assert "completion is neither text nor" in got[3]["error"] and "prompt is neither text nor" in got[4]["error"]
    assert "each message needs a role" in got[5]["error"]
    assert "invalid Unicode: unpaired surrogate" in got[6]["error"]  # in the reference: an error row, not a crash
    assert "invalid JSON: nested too deeply" in got[7]["error"] and "4300 digits" in got[8]["error"]
    assert got[9]["line"] == 10 and 'no "prompt", "messages"' in got[9]["error"]  # the BOM is skipped: {} is read
    assert "generate: 10 prompts (7 bad)" in capsys.readouterr().out

    # a prompt longer than the model's context keeps its end, and the answer says how much was cut
    ctx = load_model(final).cfg.max_seq_len
    long = "word " * (2 * ctx) + "What is 3 + 4?"
    assert main(["generate", "--model", final, "--chat", "--prompt", long, "--max-new-tokens", "5"]) == 0
    row = json.loads(capsys.readouterr().out)
    ids = ChatTemplate(BPETokenizer.load(final)).prompt([{"role": "user", "content": long}])
    assert row["prompt_tokens_dropped"] == len(ids) - (ctx - 5) > 0
    assert main(["generate", "--model", final, "--chat", "--prompt", "What is 3 + 4?", "--max-new-tokens", "5"]) == 0
    assert "prompt_tokens_dropped" not in json.loads(capsys.readouterr().out)


def test_generate_refuses_what_it_cannot_use_in_one_line(pretrained, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    final = pretrained / "final"
    reward = tmp_path / "reward"
    shutil.copytree(final, reward)
    weights = load_file(reward / "model.safetensors")
    save_file({**weights, "value.weight": torch.zeros(1, weights["embed.weight"].shape[1])}, reward / "model.safetensors")
    other = tmp_path / "other"
    shutil.copytree(final, other)
    config = json.loads((other / "model_config.json").read_text())
    (other / "model_config.json").write_text(json.dumps({**config, "d_model": config["d_model"] * 2}))
    for args, says in (([], "generate needs --prompt"), (["--model", str(reward), "--prompt", "x"], "holds a reward model"),
                       (["--model", str(other), "--prompt", "x"], "the weights do not fit its model_config.json")):
        code = main(["generate", *(args if "--model" in args else ["--model", str(final), *args])])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("llmpipe: error: ") and says in err and "\n" not in err


@given(st.text(st.characters(exclude_categories=()), max_size=60))  # lone surrogates included
@example("x\ud800y")  # every run tries one: hypothesis draws a lone surrogate only now and then
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generate_takes_any_unicode_prompt(pretrained, capsys, prompt):
    """One JSON line per prompt, whatever it holds: a completion for text, an error for a string
    that is not text (a lone surrogate), and then, nothing being usable, exit status 2 with one
    line on stderr; the line survives splitlines() (U+0085, U+2028)."""
    capsys.readouterr()
    bad = any(0xD800 <= ord(c) <= 0xDFFF for c in prompt)
    code = main(["generate", "--model", str(pretrained / "final"), f"--prompt={prompt}", "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert code == (2 if bad else 0)
    if bad:
        assert "lone surrogate" in row["error"] and err.count("\n") == 1 and "none of the 1" in err
    else:
        assert row["prompt"] == prompt and isinstance(row["completion"], str)
