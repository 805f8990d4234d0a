"""Alignment data and stages: formats, the chat template's label mask, LoRA, the reward model, DPO."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.bpe import PATTERNS, learn_merges
from llmdata.chat import BadRow, ChatTemplate, Preference, inputs_and_labels, read_rows, to_conversation, to_preference
from llmdata.sample_tasks import write_tasks
from llmdata.tokenizer_io import BPETokenizer
from pipelines.cli import main
from training.lora import apply_lora, load_adapter_into, merge_lora, save_adapter, train_token_rows, trainable_parameters
from training.model import ModelConfig, Transformer
from training.dpo import dpo_loss, pad_sides, pair_logps, sequence_logps, sides
from training.reward import PairSet, RewardModel, pad_pairs, pair_loss


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    text = "What is 3 + 4? 7 Repeat: file list name Reverse the words: path type data " * 20
    counts = {(" " + w).encode(): 5 for w in text.split()}
    return BPETokenizer(learn_merges(counts, 300).merges, PATTERNS["gpt4"])


def test_the_three_supervised_formats_become_the_same_conversation():
    chat = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    expected = chat["messages"]
    assert to_conversation(chat) == expected
    assert to_conversation({"prompt": "Q", "completion": "A"}) == expected
    assert to_conversation({"instruction": "Q", "input": "", "output": "A"}) == expected
    assert to_conversation({"instruction": "Q", "input": "x", "output": "A"})[0]["content"] == "Q\n\nx"
    for bad in ({"instruction": "Q"}, {"messages": [{"role": "robot", "content": "x"}]},
                {"messages": [{"role": "user", "content": "only a question"}]}, {"prompt": 3, "completion": "A"},
                {"prompt": "Q", "completion": " \t\u3000\u200b"}):  # an answer of spaces and zero-width characters
        with pytest.raises(ValueError):
            to_conversation(bad)
    pref = to_preference({"prompt": "Q", "chosen": "A", "rejected": "B"})
    assert pref.chosen == [{"role": "assistant", "content": "A"}]
    with pytest.raises(ValueError, match="the same"):
        to_preference({"prompt": "Q", "chosen": "A", "rejected": "A"})


def test_a_question_needs_text_a_reader_sees():
    """Held-out, exact-match and RL prompt rows must ask something: spaces of any script,
    zero-width characters, a byte order mark or an assistant turn alone ask nothing."""
    from llmdata.chat import has_text, unaskable

    answer = {"role": "assistant", "content": "5"}
    for blank in ("", "   ", "\u3000\u00a0", "\u200b", "\ufeff", "\u200e\n\t"):
        assert not has_text(blank)
        assert unaskable([{"role": "user", "content": blank}, answer])
        assert unaskable([{"role": "system", "content": blank}, {"role": "user", "content": " "}, answer])
    assert unaskable([answer]) and unaskable([{"role": "user", "content": " "}, answer, {"role": "user", "content": ""}, answer])
    for asked in ("What is 2 + 3?", "几", "\u0301", "🙂"):
        assert has_text(asked) and unaskable([{"role": "user", "content": asked}, answer]) is None
    assert unaskable([{"role": "system", "content": "Answer with a number."}, answer]) is None
    # the reference is the last turn, and it says something: else the question or the check would be lost
    question = {"role": "user", "content": "What is 2 + 2?"}
    assert "ends with a user turn" in unaskable([question, answer, {"role": "user", "content": "And 3 + 3?"}])
    for blank in ("", "   ", "\u200b"):
        assert "blank" in unaskable([question, answer, question, {"role": "assistant", "content": blank}])


@pytest.mark.parametrize("row", [
    {"prompt": "Q", "chosen": [{"role": "user", "content": "not an answer"}], "rejected": "x"},
    {"prompt": "Q", "chosen": "A", "rejected": [{"role": "system", "content": "x"}]},
])
def test_an_answer_given_as_messages_needs_an_assistant_turn(row):
    """A preference (or scored) answer of user or system turns only is a bad row, not an answer
    with no target tokens (log-probability 0, a free win or loss for DPO)."""
    from llmdata.chat import scoring_row

    with pytest.raises(ValueError, match="has no assistant turn"):
        to_preference(row)
    with pytest.raises(ValueError, match="has no assistant turn"):
        scoring_row(row)


def test_bad_rows_are_reported_with_their_line(tmp_path):
    summary = write_tasks(str(tmp_path), seed=1, train=50, heldout=5)
    rows = list(read_rows(str(tmp_path / "sft" / "train.jsonl"), "sft"))
    bad = [r for r in rows if isinstance(r, BadRow)]
    assert len(bad) == summary["bad_rows_planted"] and len(rows) - len(bad) == 50
    lines = (tmp_path / "sft" / "train.jsonl").read_bytes().splitlines()
    for b in bad:  # the line number points at the planted line
        assert b.line >= 1 and b.reason and lines[b.line - 1].strip()
    assert {b.reason.split(":")[0] for b in bad} >= {"invalid JSON", "a JSON list, not an object"}


def test_compressed_row_files_are_read_and_a_broken_one_ends_in_one_bad_row(tmp_path):
    """.gz and .bz2 are read as the clean stage reads them; a stream that breaks off keeps the rows
    before the break and ends with one bad row naming where (never a traceback, never a silent end)."""
    import bz2
    import gzip

    rows = "".join(json.dumps({"prompt": f"Repeat: file {i}", "completion": f"file {i}"}) + "\n" for i in range(400))
    plain = list(read_rows(_write(tmp_path / "r.jsonl", rows.encode()), "sft"))
    assert len(plain) == 400 and not any(isinstance(r, BadRow) for r in plain)
    packed = gzip.compress(rows.encode(), mtime=0)
    for name, data in (("r.jsonl.gz", packed), ("r.jsonl.bz2", bz2.compress(rows.encode()))):
        assert list(read_rows(_write(tmp_path / name, data), "sft")) == plain
    cut = list(read_rows(_write(tmp_path / "cut.jsonl.gz", packed[: len(packed) // 2]), "sft"))
    *good, last = cut
    assert good == plain[: len(good)] and 0 < len(good) < 400
    assert isinstance(last, BadRow) and last.line == len(good) + 1
    assert last.reason.startswith(f"unreadable file: after line {len(good)}: EOFError")
    (only,) = read_rows(_write(tmp_path / "not.jsonl.gz", rows.encode()), "sft")  # named .gz, not gzip
    assert isinstance(only, BadRow) and only.reason.startswith("unreadable file: after line 0: BadGzipFile")


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))), max_size=8))
def test_any_lines_are_rows_or_bad_rows_never_an_exception(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("rows") / "x.jsonl"
    path.write_bytes(b"\n".join(line.encode("utf-8", "surrogatepass") for line in lines))
    for kind in ("sft", "preference"):
        for item in read_rows(str(path), kind):
            assert isinstance(item, (BadRow, tuple))


def test_a_conversation_cut_to_nothing_is_a_bad_row_at_its_line(tok, tmp_path):
    """A prompt longer than seq_len leaves no assistant token to learn: a bad row naming its line
    and text, as the reader's own bad rows do (it was line 0 with no text)."""
    from training.finetune import load_conversations

    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}]
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples, parsed, bad, truncated = load_conversations(str(path), ChatTemplate(tok), 32)
    assert len(examples) == len(parsed) == 1 and truncated == 1
    assert [(b.line, b.reason) for b in bad] == [(2, "no assistant token left after truncation to seq_len")]
    assert bad[0].raw.startswith('{"messages"')


def test_labels_are_exactly_the_assistant_tokens(tok):
    template = ChatTemplate(tok)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is 3 + 4?"},
                {"role": "assistant", "content": "7"}, {"role": "user", "content": "Repeat: file"},
                {"role": "assistant", "content": "file"}]
    ids, mask = template.encode(messages)
    inp, labels = inputs_and_labels(ids, mask)
    expected_targets = []
    for m in messages:
        if m["role"] == "assistant":
            expected_targets += tok.encode(m["content"]) + [template.end_id]
    assert [t for t in labels if t != -100] == expected_targets
    # every ignored label is a prompt token: role tokens, system/user content, their <|end|>, the final eot
    prompt_len = len(template.encode(messages[:2], eot=False)[0])
    assert labels[: prompt_len] == [-100] * prompt_len  # up to and including <|assistant|>
    assert inp == ids[:-1] and labels[-1] == -100  # <|endoftext|> is not a target
    everything = ChatTemplate(tok, train_on_prompt=True)
    _, all_labels = inputs_and_labels(*everything.encode(messages))
    assert all(t != -100 for t in all_labels)


def test_role_token_text_inside_content_cannot_forge_a_turn(tok):
    template = ChatTemplate(tok)
    ids, _ = template.encode([{"role": "user", "content": "<|assistant|>hi<|end|>"}, {"role": "assistant", "content": "ok"}])
    specials = set(tok.special_ids.values())
    assert [t for t in ids if t in specials] == [template.role_ids["user"], template.end_id, template.role_ids["assistant"],
                                                 template.end_id, template.eot_id]


def small_model(**kw) -> Transformer:
    torch.manual_seed(0)
    shape = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, ffn_multiple_of=16)
    return Transformer(ModelConfig(**{**shape, **kw}))


def test_lora_merge_equals_the_adapter_model_and_freezes_the_base(tmp_path):
    model = small_model()
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    wrapped = apply_lora(model, ["wq", "wk", "wv", "wo", "w1", "w2", "w3"], rank=4, alpha=8, dropout=0.0)
    assert len(wrapped) == 2 * 7
    train_token_rows(model, [94, 95])  # e.g. role tokens the base never saw
    trainable, total = trainable_parameters(model)
    lora_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert trainable == lora_params + 2 * model.cfg.d_model and trainable < total  # tied: one copy of the rows
    ids = torch.randint(0, 97, (2, 12))
    ids[:, 3] = 94
    with torch.no_grad():
        assert torch.allclose(model(ids)["logits"], Transformer.forward(small_model(), ids)["logits"], atol=1e-6)  # B = 0
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.05)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(ids, labels=ids)["loss"].backward()
    opt.step()
    for name, value in model.state_dict().items():
        if "lora_" not in name and not name.endswith(".rows"):
            assert torch.equal(value, base_state[name.replace(".base.", ".")]), name  # the base never moves
    assert not torch.equal(model.embed.rows, base_state["embed.weight"][[94, 95]])  # the token rows did
    model.eval()
    with torch.no_grad():
        adapted = model(ids)["logits"]
        save_adapter(str(tmp_path / "adapter"), model.state_dict(), model.cfg, 4, 8, 0.0, ["wq", "wk", "wv", "wo", "w1", "w2", "w3"], "base",
                     (94, 95))
        reloaded = load_adapter_into(small_model(), str(tmp_path / "adapter")).eval()
        assert torch.allclose(reloaded(ids)["logits"], adapted, atol=1e-5)  # PEFT layout round trip (HF rotary rows)
        merged = merge_lora(reloaded)
        assert not any("lora_" in n for n, _ in merged.named_parameters())
        assert torch.allclose(merged(ids)["logits"], adapted, atol=1e-5)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and "q_proj" in config["target_modules"] and config["r"] == 4
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in keys


def test_reward_is_read_at_the_last_real_token_whatever_the_padding():
    model = RewardModel(small_model()).eval()
    seq = [5, 6, 7, 8, 9]
    short = pad_pairs([{"chosen": seq, "rejected": seq[:3]}], pad_id=0)
    long = pad_pairs([{"chosen": seq, "rejected": seq[:3]}, {"chosen": seq + [1] * 20, "rejected": [2]}], pad_id=0)
    for pad in (0, 96):
        long_other = pad_pairs([{"chosen": seq, "rejected": seq[:3]}, {"chosen": seq + [1] * 20, "rejected": [2]}], pad_id=pad)
        with torch.no_grad():
            a, b = model(**short), model(**long_other)
        assert torch.allclose(a[0], b[0], atol=1e-6) and torch.allclose(a[1], b[2], atol=1e-6)
    assert long["input_ids"].shape == (4, 25) and long["lengths"].tolist() == [5, 25, 3, 1]


def test_reward_lm_regularizer_is_the_chosen_responses_next_token_loss(tok):
    """lm_coef's term is the language model's own loss on exactly the chosen side's response
    tokens: the rejected side and the prompt contribute nothing."""
    template = ChatTemplate(tok)
    model = RewardModel(small_model(vocab_size=tok.vocab_size, tie_embeddings=False), lm_head=True).eval()
    prompt = [{"role": "user", "content": "Sort the words: b a"}]
    chosen = template.encode(prompt + [{"role": "assistant", "content": "a b"}])
    rejected = template.encode(prompt + [{"role": "assistant", "content": "b a c"}])
    batch = pad_pairs([PairSet([(chosen, rejected)])[0]], pad_id=tok.special_ids["<|pad|>"])
    assert batch["labels"].shape == (1, batch["input_ids"].size(1))
    targets = [t for t, m in zip(chosen[0][1:], chosen[1][1:]) if m]
    assert [t for t in batch["labels"][0].tolist() if t != -100] == targets
    with torch.no_grad():
        rewards, lm_sum, count = model(**batch)
        ids, labels = inputs_and_labels(*chosen)
        own = model.backbone(torch.tensor([ids]), labels=torch.tensor([labels]))["loss"]
        assert torch.allclose(rewards, model(batch["input_ids"], batch["lengths"]))
    assert int(count) == len(targets) and torch.allclose(lm_sum / count, own, atol=1e-5)
    assert model.backbone.head.weight.requires_grad


def test_bradley_terry_loss():
    rewards = torch.tensor([2.0, 0.0, 0.0, 0.0])  # chosen 2, 0; rejected 0, 0
    loss = pair_loss(rewards, margin=0.0, center_coef=0.0)
    assert torch.allclose(loss, torch.tensor([-torch.log(torch.sigmoid(torch.tensor(2.0))), torch.log(torch.tensor(2.0))]))
    assert pair_loss(rewards, 1.0, 0.0)[0] > loss[0]
    assert pair_loss(rewards, 0.0, 0.5)[0] == pytest.approx(float(loss[0]) + 0.5 * 4)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    write_tasks(str(folder), seed=0, train=600, heldout=40)
    return folder


def test_sft_and_lora_stages_train_export_and_report(pretrained, packed, tasks, tmp_path):
    common = ["--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--no-progress"]
    for stage in ("sft", "lora"):
        out = tmp_path / stage
        args = [stage, *common, "--output", str(out), "--set", f"{stage}.train_file={tasks / 'sft' / 'train.jsonl'}",
                "--set", f"{stage}.heldout_file={tasks / 'sft' / 'heldout.jsonl'}", "--set", f"{stage}.seq_len=128",
                "--set", f"{stage}.max_steps=12", "--set", f"{stage}.eval_every=6", "--set", f"{stage}.save_every=12",
                "--set", f"{stage}.eval_generate=10", "--set", f"{stage}.max_new_tokens=6", "--set", f"{stage}.tensorboard=false",
                "--set", f"{stage}.pretrain_data={packed[0]}"]  # the demo config mixes pretraining text in
        assert main(args) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        c = manifest["counts"]
        assert c["input"] == 605 and c["used"] == 600 and c["bad"]["total"] == 5  # the planted rows, counted
        evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
        assert evals[-1]["val_loss"] < evals[0]["val_loss"]  # held-out loss falls
        assert manifest["exact_match"]["after"]["n"] == 10
        assert len((out / "bad_rows.jsonl").read_text().splitlines()) == 5
        report = (out / "report.md").read_text()
        assert "Exact match" in report and "bad rows: invalid JSON" in report
    assert (tmp_path / "sft" / "final" / "chat_template.json").exists()
    for folder in ("sft", "lora"):  # both end with a Hugging Face export (tests/test_export.py checks its numbers)
        assert (tmp_path / folder / "hf" / "config.json").exists()
        specials = BPETokenizer.load(str(pretrained / "final")).special_ids  # chat models stop at their end of turn
        stops = json.loads((tmp_path / folder / "hf" / "generation_config.json").read_text())["eos_token_id"]
        assert stops == [specials["<|end|>"], specials["<|endoftext|>"]]
    adapter = json.loads((tmp_path / "lora" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(pretrained / "hf")  # the base stage's export, which PEFT loads
    lora = json.loads((tmp_path / "lora" / "manifest.json").read_text())
    assert lora["trainable_parameters"] < json.loads((tmp_path / "sft" / "manifest.json").read_text())["trainable_parameters"]
    from safetensors.torch import load_file

    from training.export import load_model

    merged = load_model(str(tmp_path / "lora" / "merged"))
    base = load_file(pretrained / "final" / "model.safetensors")
    assert any(not torch.equal(base[k], merged.state_dict()[k]) for k in base if k.startswith("blocks."))
    assert main(["lora-merge", "--base", str(pretrained / "final"), "--adapter", str(tmp_path / "lora" / "adapter"),
                 "--output", str(tmp_path / "merged2")]) == 0
    again = load_file(tmp_path / "merged2" / "model.safetensors")
    assert all(torch.allclose(again[k], merged.state_dict()[k]) for k in again)


@pytest.mark.parametrize("stage, extra, says", [
    ("sft", [], "sft: no usable conversation"),
    ("lora", [], "lora: no usable conversation"),
    ("sft", ["good data", "empty held-out"], "sft: no usable conversation in sft.heldout_file"),
    ("lora", ["good data", "empty held-out"], "lora: no usable conversation in lora.heldout_file"),
    ("lora", ["--set", "lora.train_tokens=[<|nope|>]", "good data"], "lora.train_tokens: ['<|nope|>'] are not special"),
    ("reward", [], "reward: no usable preference pair"),
    ("dpo", [], "dpo: no usable preference pair"),
    ("dpo", ["--set", "dpo.max_len=100000", "good data"], "dpo: max_len 100000 is beyond"),
    ("dpo", ["good data", "empty eval"], "dpo: no usable conversation in dpo.eval_file"),
])
def test_unusable_data_or_settings_are_one_line_and_clear_no_checkpoints(pretrained, tasks, tmp_path, capsys,
                                                                         stage, extra, says):
    """Read and checked before the stage folder is touched: an earlier run's checkpoints survive."""
    kind = "sft" if stage in ("sft", "lora") else "preferences"
    train = tasks / kind / "train.jsonl"
    if "good data" not in extra:
        train = tmp_path / "bad.jsonl"
        train.write_text('not json\n{"prompt": 3}\n')
    out = tmp_path / "o"
    (out / "checkpoints" / "step_5").mkdir(parents=True)
    (out / "checkpoints" / "fingerprint").write_text("an earlier run's")
    held_file = tasks / kind / "heldout.jsonl"
    nothing_to_ask = ('{"messages": [{"role": "assistant", "content": "x"}]}\n'  # exact match crashed on it
                      '{"prompt": " ", "completion": "x"}\n')  # and scored an answer to nothing
    if "empty held-out" in extra:  # configured but without one usable row: exact match would be n/a unnoticed
        held_file = tmp_path / "empty.jsonl"
        held_file.write_text("not json\n" + nothing_to_ask)
    held = ["--set", f"{stage}.heldout_file={held_file}"]
    if stage == "dpo":
        eval_file = tasks / "sft" / "heldout.jsonl"
        if "empty eval" in extra:  # configured but without one usable row: exact match would be n/a unnoticed
            eval_file = tmp_path / "empty_eval.jsonl"
            eval_file.write_text('not json\n{"prompt": 3}\n' + nothing_to_ask)
        held += ["--set", f"dpo.eval_file={eval_file}"]
    code = main([stage, "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
                 "--no-progress", "--set", f"{stage}.train_file={train}", *held, *[a for a in extra if a not in ("good data", "empty held-out", "empty eval")]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"llmpipe: error: {says}") and "\n" not in err
    assert (out / "checkpoints" / "step_5").is_dir()


def forty_pairs(tasks, folder):
    """Every 75th demo training pair (40 pairs of 40 prompts) in a file of their own."""
    seen = folder / "forty.jsonl"
    lines = (tasks / "preferences" / "train.jsonl").read_text().splitlines()[::75]
    seen.write_text("".join(line + "\n" for line in lines))
    return seen


def test_reward_stage_learns_the_demo_preferences_and_scores(pretrained, tasks, tmp_path, capsys):
    """60 steps from the tiny pretrained model fit 40 demo pairs (24 passes): their accuracy rises.
    (Held-out pairs of the demo's error kinds take the demo's 1,000 steps from the SFT model: from
    this tiny model, 200 steps on 3,000 pairs gave 50% -> 57.5% on 40 held-out pairs.)"""
    seen = forty_pairs(tasks, tmp_path)
    out = tmp_path / "reward"
    assert main(["reward", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
                 "--no-progress", "--set", f"reward.train_file={seen}", "--set", f"reward.heldout_file={seen}",
                 "--set", "reward.max_steps=60", "--set", "reward.lr=3e-3", "--set", "reward.eval_every=30",
                 "--set", "reward.tensorboard=false"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    after = manifest["heldout"]["after"]
    before = manifest["heldout"]["before"]
    assert after["pairs"] == 40 and after["accuracy"] >= before["accuracy"] + 0.1 and after["mean_margin"] > 0
    assert manifest["config"]["lm_coef"] > 0  # the demo's setting: the chosen answers' next-token loss rides along
    # a pairwise loss has no perplexity: none is reported
    assert "val_ppl" not in manifest["summary"] and "perplexity" not in (out / "report.md").read_text()
    rows = tmp_path / "score.jsonl"
    long_prompt = "Repeat: " + "file list " * 400
    more = [{"prompt": long_prompt, "chosen": "file", "rejected": "list"},
            {"prompt": long_prompt, "chosen": "file", "rejected": "list " * 300},  # one side fits, the pair does not
            {"prompt": "Repeat: file", "chosen": [{"role": "assistant", "content": "file"}], "rejected": "list"},
            {"prompt": "q", "chosen": "a", "rejected": 3}, {"prompt": [{"role": "tool", "content": "q"}], "response": "a"}]
    rows.write_bytes(b'{"prompt": "Repeat: file list", "response": "file list"}\nnot json\n{"prompt": "\xff"}\n'
                     + b"".join(json.dumps(r).encode() + b"\n" for r in more))
    capsys.readouterr()
    assert main(["reward", "score", "--model", str(out / "final"), "--input", str(rows)]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(x) for x in captured.out.splitlines()]
    assert isinstance(lines[0]["response_reward"], float) and "invalid JSON" in lines[1]["error"]
    assert lines[2] == {"line": 3, "error": "ValueError: invalid UTF-8 at byte 12"}
    assert "response_cut" not in lines[0]  # it fits the model
    # 800 prompt tokens do not fit the model's 512: scored cut as its training pairs were, and said so
    assert lines[3]["chosen_cut"] is True and lines[3]["rejected_cut"] is True
    assert lines[3]["chosen_reward"] != lines[3]["rejected_reward"]
    # a pair is cut as one (the same prompt tokens on both sides, as in training): both sides say so,
    # and the short side scores as it does beside the long one in the reward model's own pair encoding
    from training.reward import RewardModel, encode_pair, load_reward_model

    assert lines[4]["chosen_cut"] is True and lines[4]["rejected_cut"] is True
    model, template = load_reward_model(str(out / "final")), ChatTemplate(BPETokenizer.load(str(out / "final")))
    (chosen_ids, _), _, was_cut = encode_pair(template, to_preference(more[1]), model.cfg.max_seq_len)
    assert was_cut and lines[4]["chosen_reward"] == pytest.approx(
        float(RewardModel.forward(model, torch.tensor([chosen_ids]), torch.tensor([len(chosen_ids)]))[0]), abs=1e-5)
    assert isinstance(lines[5]["chosen_reward"], float) and "rejected_reward" in lines[5]  # messages, as preference rows
    assert "rejected" in lines[6]["error"] and "role" in lines[7]["error"]  # never dropped, never a Python KeyError
    assert "8 rows, 4 scored, 4 bad, 4 answers scored cut to the model's length" in captured.err
    assert captured.err.count("\n") == 1
    # --output never replaces the input, and a failed run leaves an earlier output whole
    before = rows.read_bytes()
    assert main(["reward", "score", "--model", str(out / "final"), "--input", str(rows), "--output", str(rows)]) == 2
    assert rows.read_bytes() == before and "is the input file" in capsys.readouterr().err
    scores = tmp_path / "scores.jsonl"
    scores.write_text("an earlier run's scores\n")

    def broken(*args, **kwargs):
        raise RuntimeError("the machine went away")

    import training.reward

    original = training.reward.score_responses
    training.reward.score_responses = broken
    try:
        with pytest.raises(RuntimeError):
            main(["reward", "score", "--model", str(out / "final"), "--input", str(rows), "--output", str(scores)])
    finally:
        training.reward.score_responses = original
    assert scores.read_text() == "an earlier run's scores\n" and [p.name for p in tmp_path.glob("scores*")] == ["scores.jsonl"]
    assert main(["reward", "score", "--model", str(out / "final"), "--input", str(rows), "--output", str(scores)]) == 0
    assert [json.loads(x) for x in scores.read_text().splitlines()] == lines
    capsys.readouterr()
    rows.write_bytes(b'not json\n{"prompt": "SFT rows are not scored", "completion": "x"}\n')
    assert main(["reward", "score", "--model", str(out / "final"), "--input", str(rows)]) == 2  # nothing scored
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "none of the 2 rows" in captured.err and captured.err.count("\n") == 1
    hf = json.loads((out / "hf" / "config.json").read_text())
    assert hf["architectures"] == ["LlamaForSequenceClassification"] and hf["num_labels"] == 1


def test_dpo_loss_by_hand():
    """h = beta * ((pi_c - ref_c) - (pi_r - ref_r)); loss = -log sigmoid(h), smoothed: -(1-e) log s(h) - e log s(-h)."""
    policy = torch.tensor([-1.0, -3.0, -2.0, -2.0])  # chosen of pair 1, 2; rejected of pair 1, 2
    reference = torch.tensor([-2.0, -2.0, -2.0, -2.0], dtype=torch.float64)
    h = torch.tensor([0.5 * (1.0 - 0.0), 0.5 * (-1.0 - 0.0)])
    assert torch.allclose(dpo_loss(policy, reference, beta=0.5), -torch.nn.functional.logsigmoid(h))
    smoothed = dpo_loss(policy, reference, beta=0.5, label_smoothing=0.2)
    expected = -0.8 * torch.nn.functional.logsigmoid(h) - 0.2 * torch.nn.functional.logsigmoid(-h)
    assert torch.allclose(smoothed, expected)
    assert torch.allclose(dpo_loss(reference.float(), reference, 0.1), torch.log(torch.tensor([2.0, 2.0])))  # at the start


def test_dpo_log_probs_count_exactly_the_response_tokens(tok):
    """A pair's log-probability sums log p over the assistant's tokens (and its end token) only,
    whatever the padding, and equals summing the per-token log-probs by hand."""
    torch.manual_seed(0)
    model = small_model(vocab_size=tok.vocab_size).eval()
    template = ChatTemplate(tok)
    prompt = [{"role": "user", "content": "What is 3 + 4?"}]
    chosen = template.encode(prompt + [{"role": "assistant", "content": "7"}])
    rejected = template.encode(prompt + [{"role": "assistant", "content": "8 or so"}])
    (pair,) = sides([(chosen, rejected)])
    with torch.no_grad():
        batch = pad_sides([{"chosen": pair[0], "rejected": pair[1]}], pad_id=0)
        logps = sequence_logps(model, batch["input_ids"], batch["labels"])
        for side, (ids, mask) in enumerate((chosen, rejected)):
            logits = model(torch.tensor([ids]))["logits"][0].log_softmax(-1)
            by_hand = sum(float(logits[t - 1, ids[t]]) for t in range(1, len(ids)) if mask[t])
            assert float(logps[side]) == pytest.approx(by_hand, abs=1e-4)
        assert sum(m for m in rejected[1][1:]) == len(tok.encode("8 or so")) + 1  # the answer and its <|end|>
        (pair_logp,) = pair_logps(model, [pair], pad_id=7)  # another pad id: the same sums
    assert pair_logp == pytest.approx(tuple(logps.tolist()), abs=1e-4)


def test_dpo_stage_learns_the_demo_preferences(pretrained, tasks, tmp_path):
    """Starting from the pretrained model, DPO separates chosen from rejected on 40 demo pairs it
    trains on (implicit reward accuracy above chance, positive margin), writes its model, report
    and HF export, and the run report shows it. (On held-out pairs of the demo's error kinds the
    tiny test model reaches 57.5% in these 40 steps.)"""
    seen = forty_pairs(tasks, tmp_path)
    out = tmp_path / "run" / "09-dpo"
    eval_file = tmp_path / "eval.jsonl"  # the held-out conversations and one broken row, listed as such
    eval_file.write_text((tasks / "sft" / "heldout.jsonl").read_text() + '{"prompt": "unterminated\n')
    assert main(["dpo", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
                 "--no-progress", "--set", f"dpo.train_file={seen}", "--set", f"dpo.heldout_file={seen}",
                 "--set", f"dpo.eval_file={eval_file}", "--set", "dpo.eval_generate=5",
                 "--set", "dpo.max_new_tokens=4", "--set", "dpo.max_steps=40", "--set", "dpo.lr=1e-3",
                 "--set", "dpo.eval_every=20", "--set", "dpo.tensorboard=false",
                 "--set", "dpo.rpo_alpha=0"]) == 0  # plain DPO (the demo config adds RPO's NLL term)
    manifest = json.loads((out / "manifest.json").read_text())
    after = manifest["heldout"]["after"]
    assert after["pairs"] == 40 and after["reward_accuracy"] > 0.6 and after["mean_margin"] > 0
    assert manifest["heldout"]["before"]["mean_margin"] == 0  # policy == reference at the start
    assert manifest["exact_match"]["after"]["n"] == 5
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert all(e["val_loss"] < 0.6932 for e in evals)  # below log 2, where DPO starts
    assert "implicit reward accuracy" in (out / "report.md").read_text()
    assert "| exact-match file bad rows | 1 |" in (out / "report.md").read_text()
    bad = [json.loads(line) for line in (out / "bad_rows.jsonl").read_text().splitlines()]
    last = len(eval_file.read_text().splitlines())
    assert [(b["file"], b["line"]) for b in bad] == [(str(eval_file), last)] and "invalid JSON" in bad[0]["reason"]
    assert (out / "final" / "chat_template.json").exists() and (out / "hf" / "config.json").exists()
    specials = BPETokenizer.load(str(out / "final")).special_ids  # a chat model: it stops at its end of turn
    stops = json.loads((out / "hf" / "generation_config.json").read_text())["eos_token_id"]
    assert stops == [specials["<|end|>"], specials["<|endoftext|>"]]
    from pipelines.run_report import build

    _, sections = build(str(tmp_path / "run"))
    (dpo,) = [s for s in sections if s.title == "DPO on 40 held-out pairs"]
    assert dpo.blocks[0][2][0][2] == f"{100 * after['reward_accuracy']:.1f}%"


words = st.lists(st.sampled_from(["file", " list", " name", "path", " 7", "\n", " data", "?"]), max_size=30).map("".join)


@settings(max_examples=80, deadline=None)
@given(prompt=words, chosen=words, rejected=words, max_len=st.integers(4, 60))
def test_pairs_are_cut_with_the_same_prompt_tokens_on_both_sides(tok, prompt, chosen, rejected, max_len):
    """TRL's way: one prompt, cut from the left only as much as the longer response needs (keeping
    at least half of max_len), then the responses cut from the right, keeping their last token."""
    from training.reward import encode_pair

    if chosen == rejected:
        return
    template = ChatTemplate(tok)
    pref = to_preference({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    full_prompt = template.encode(pref.prompt, eot=False)[0]
    answers = [template.encode(pref.chosen)[0], template.encode(pref.rejected)[0]]
    sides_ = encode_pair(template, pref, max_len)
    pair, was_cut = sides_[:2], sides_[2]
    longest = max(len(a) for a in answers)
    assert was_cut == (len(full_prompt) + longest > max_len)
    if not was_cut:
        assert [p[0] for p in pair] == [template.encode(pref.prompt + a)[0] for a in (pref.chosen, pref.rejected)]
        return
    keep = max(max_len - longest, min(len(full_prompt), max_len // 2))
    for (ids, mask), answer in zip(pair, answers):
        assert len(ids) == len(mask) <= max_len
        assert ids[:keep] == full_prompt[len(full_prompt) - keep:]  # the same prompt tokens on both sides
        response = ids[keep:]
        assert response == answer or (response[:-1] == answer[: len(response) - 1] and response[-1] == template.eot_id)


@settings(max_examples=60, deadline=None)
@given(prompt=words, response=words, max_len=st.integers(4, 60))
def test_a_scored_response_is_cut_as_the_training_pairs_are(tok, prompt, response, max_len):
    """What the reward model scores (reward score, best-of-N, RL) is cut by the rule its training
    pairs were cut by: the same ids as a pair's side with that response, and the same flag."""
    from training.reward import encode_pair, encode_response

    template = ChatTemplate(tok)
    pref = to_preference({"prompt": prompt, "chosen": response, "rejected": response + " x"})
    ids, cut = encode_response(template, pref.prompt, response, max_len)
    alone = Preference(pref.prompt, pref.chosen, pref.chosen)  # the rule with this response as the longest
    (side_ids, _), _, side_cut = encode_pair(template, alone, max_len)
    assert (ids, cut) == (side_ids, side_cut)
    assert len(ids) <= max_len and ids[-1] == template.eot_id


@pytest.mark.parametrize("precision", ["bf16"])
def test_dpo_reference_is_the_policy_at_step_0_in_its_precision(pretrained, tasks, tmp_path, precision):
    """The first step's loss is exactly log 2 (h = 0 for every pair) when the reference log-probs come
    from the engine the policy trains in, not from the fp32 module before DeepSpeed casts it."""
    import math

    out = tmp_path / "dpo"
    assert main(["dpo", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
                 "--no-progress", "--set", f"dpo.train_file={tasks / 'preferences' / 'train.jsonl'}",
                 "--set", f"dpo.heldout_file={tasks / 'preferences' / 'heldout.jsonl'}",
                 "--set", f"dpo.eval_file={tasks / 'sft' / 'heldout.jsonl'}",
                 "--set", f"dpo.precision={precision}", "--set", "dpo.max_steps=1", "--set", "dpo.eval_generate=0",
                 "--set", "dpo.export_hf=false", "--set", "dpo.tensorboard=false", "--set", "dpo.rpo_alpha=0"]) == 0
    first = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line][0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_a_pair_without_reference_log_probs_raises_instead_of_training_on_nothing(tok):
    from training.dpo import PreferenceSet

    pair = (([1, 2], [-100, 2]), ([1, 3], [-100, 3]))
    data = PreferenceSet([pair, pair], ref=[(-1.0, -2.0), None])
    assert data[0]["ref"] == (-1.0, -2.0)
    with pytest.raises(RuntimeError, match="pair 1 has no reference log-probs"):
        data[1]


def test_a_broken_reward_model_folder_is_one_line(tok, tmp_path):
    """What `llmpipe rl` / `reward score` is given as a reward model: damaged tokenizer file, a
    model_config.json whose shapes do not fit the weights: one-line TrainingInputErrors."""
    from training.best_of_n import load_matching_reward_model
    from training.reward import save_reward_model
    from training.stage import TrainingInputError

    torch.manual_seed(0)
    model = RewardModel(Transformer(ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=4, n_kv_heads=2,
                                                max_seq_len=64, ffn_multiple_of=16)))
    folder = tmp_path / "rm"
    save_reward_model(str(folder), model.state_dict(), model.cfg)
    tok.save(str(folder))
    assert load_matching_reward_model(str(folder), tok) is not None
    config = json.loads((folder / "model_config.json").read_text())
    (folder / "model_config.json").write_text(json.dumps({**config, "d_model": 64}))
    with pytest.raises(TrainingInputError, match="the weights do not fit its model_config.json") as err:
        load_matching_reward_model(str(folder), tok)
    assert "\n" not in str(err.value)
    (folder / "model_config.json").write_text(json.dumps(config))
    for broken in ('{"merges": [', "[]", '{"merges": [[1, 2]]}'):
        (folder / "llmpipe_tokenizer.json").write_text(broken)
        with pytest.raises(TrainingInputError, match="llmpipe_tokenizer.json") as err:
            load_matching_reward_model(str(folder), tok)
        assert "\n" not in str(err.value)
