"""Chat exports behave like llmpipe: transformers' `generate` stops where `llmpipe generate --chat`
does, `apply_chat_template` gives the training ids, and the exported reward model reads its score
where `score()` does. The models are tiny ones trained in the test until they answer a few
questions and close their turn with <|end|> (what they write after it was never a target)."""
import copy
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.bpe import PATTERNS, learn_merges
from llmdata.chat import ChatTemplate, inputs_and_labels
from llmdata.tokenizer_io import BPETokenizer
from pipelines.cli import main
from training.dpo import dpo_loss, pad_sides, sequence_logps, sides
from training.export import save_model
from training.lora import apply_lora, merge_lora, train_token_rows
from training.model import ModelConfig, Transformer
from training.reward import RewardModel, save_reward_model, score
from training.stage import complete_model_dir

transformers = pytest.importorskip("transformers")
jinja2 = pytest.importorskip("jinja2")

QA = [("What is 3 + 4?", "7"), ("Repeat: file list", "file list"), ("Reverse the words: path type data", "data type path")]
MAX_NEW = 12


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    text = " ".join(q + " " + a for q, a in QA) * 20
    counts = {(" " + w).encode(): 5 for w in text.split()}
    folder = tmp_path_factory.mktemp("tok")
    BPETokenizer(learn_merges(counts, 300).merges, PATTERNS["gpt4"]).save(str(folder))
    return folder


def conversations() -> list[list[dict]]:
    return [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in QA]


def fit(model: Transformer, template: ChatTemplate, steps: int, lr: float) -> Transformer:
    """Train `model`'s trainable parameters on QA (full batch) until it has memorized the answers."""
    rows = [inputs_and_labels(*template.encode(c)) for c in conversations()]
    width = max(len(i) for i, _ in rows)
    ids = torch.tensor([i + [0] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains ten times faster on one thread of a shared machine
    try:
        for _ in range(steps):
            opt.zero_grad()
            model(ids, labels=labels)["loss"].backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def tiny(vocab: int) -> Transformer:
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=vocab, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64,
                                   ffn_multiple_of=16))


@pytest.fixture(scope="module")
def chat_models(tok_dir, tmp_path_factory) -> dict[str, Path]:
    """Folders as the SFT, LoRA (merged/) and DPO stages leave them, each exported to hf/."""
    tok = BPETokenizer.load(str(tok_dir))
    template = ChatTemplate(tok)
    root = tmp_path_factory.mktemp("chat")
    sft = fit(tiny(tok.vocab_size), template, steps=60, lr=1e-2)
    lora = tiny(tok.vocab_size)
    apply_lora(lora, ["wq", "wk", "wv", "wo", "w1", "w2", "w3"], rank=8, alpha=16, dropout=0.0)
    train_token_rows(lora, [tok.special_ids[t] for t in ("<|user|>", "<|assistant|>", "<|end|>")])
    lora = merge_lora(fit(lora, template, steps=300, lr=1e-2))
    reference, dpo = sft, copy.deepcopy(sft)  # DPO starts from the SFT model, its reference
    prompt = [{"role": "user", "content": QA[0][0]}]
    pair = sides([(template.encode(prompt + [{"role": "assistant", "content": "7"}]),
                   template.encode(prompt + [{"role": "assistant", "content": "8"}]))])[0]
    batch = pad_sides([{"chosen": pair[0], "rejected": pair[1]}], tok.special_ids["<|pad|>"])
    with torch.no_grad():
        ref = sequence_logps(reference, batch["input_ids"], batch["labels"])
    opt = torch.optim.AdamW(dpo.parameters(), lr=1e-4)
    dpo.train()
    for _ in range(3):
        opt.zero_grad()
        dpo_loss(sequence_logps(dpo, batch["input_ids"], batch["labels"]), ref, beta=0.1).sum().backward()
        opt.step()
    folders = {}
    for name, model in (("sft", sft), ("lora-merged", lora), ("dpo", dpo)):
        folder = root / name
        save_model(str(folder), model.eval().state_dict(), model.cfg)
        complete_model_dir(str(tok_dir), str(folder), template.to_json())
        assert main(["export", "--model", str(folder), "--output", str(root / f"{name}-hf")]) == 0
        folders[name] = folder
    return folders


def llmpipe_answers(folder: Path, prompts: list[str], capsys) -> list[str]:
    capsys.readouterr()
    args = ["generate", "--model", str(folder), "--chat", "--max-new-tokens", str(MAX_NEW)]
    assert main(args + [f"--prompt={p}" for p in prompts]) == 0
    return [json.loads(line)["completion"] for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("name", ["sft", "lora-merged", "dpo"])
def test_transformers_generate_answers_as_llmpipe_generate_chat(chat_models, name, capsys):
    folder = chat_models[name]
    hf_dir = folder.parent / f"{name}-hf"
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    tok = BPETokenizer.load(str(folder))
    end = tok.special_ids["<|end|>"]
    prompts = [q for q, _ in QA] + ["Repeat: path", "What is"]
    ours = llmpipe_answers(folder, prompts, capsys)
    assert ours[: len(QA)] == [a for _, a in QA]  # the model answers, then closes its turn
    for prompt, answer in zip(prompts, ours):
        inputs = hf_tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        out = model.generate(**inputs, max_new_tokens=MAX_NEW, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:].tolist()
        if len(tok.encode(answer)) < MAX_NEW:  # llmpipe stopped at <|end|>: so does transformers, right there
            assert new[-1] == end and end not in new[:-1], (prompt, hf_tok.decode(new))
        assert hf_tok.decode(new, skip_special_tokens=True).strip() == answer
    gen = json.loads((hf_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [end, tok.eot_id] and hf_tok.eos_token == "<|end|>"


def encode_chat(hf_tok, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    """docs/export.md's recipe: llmpipe's ids with the HF tokenizer, message text as ordinary text."""
    ids: list[int] = []
    for m in messages:
        ids.append(hf_tok.convert_tokens_to_ids(f"<|{m['role']}|>"))
        ids += hf_tok(m["content"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        ids.append(hf_tok.convert_tokens_to_ids("<|end|>"))
    return ids + [hf_tok.convert_tokens_to_ids("<|assistant|>" if add_generation_prompt else "<|endoftext|>")]


@pytest.fixture(scope="module")
def hf_tok(chat_models):
    return transformers.AutoTokenizer.from_pretrained(chat_models["sft"].parent / "sft-hf")


RESERVED = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
content = st.lists(st.one_of(st.text(max_size=12), st.sampled_from(RESERVED + ["<|", "|>", "<|end", "end|>", "<|foo|>", " ", "\n"])),
                   max_size=6).map("".join)
message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": content})


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(message, min_size=1, max_size=4), generation=st.booleans())
def test_apply_chat_template_gives_the_training_ids(chat_models, hf_tok, messages, generation):
    """Whole conversations end with <|endoftext|> as in training, prompts with <|assistant|>. A message
    holding reserved-token text is refused by the template (it would become a real token, a forged
    turn, where llmpipe reads it as text); the per-message recipe of docs/export.md encodes it exactly."""
    template = ChatTemplate(BPETokenizer.load(str(chat_models["sft"])))
    expected = template.prompt(messages) if generation else template.encode(messages)[0]
    assert encode_chat(hf_tok, messages, generation) == expected
    if any(t in m["content"] for m in messages for t in RESERVED):
        with pytest.raises(jinja2.exceptions.TemplateError, match="reserved token text"):
            hf_tok.apply_chat_template(messages, add_generation_prompt=generation)
        return
    ids = hf_tok.apply_chat_template(messages, add_generation_prompt=generation, return_dict=False)
    assert ids == expected


def test_the_exported_reward_model_scores_template_text_like_score(tok_dir, tmp_path):
    tok = BPETokenizer.load(str(tok_dir))
    template = ChatTemplate(tok)
    reward = RewardModel(tiny(tok.vocab_size)).eval()
    folder = tmp_path / "reward"
    save_reward_model(str(folder), reward.state_dict(), reward.cfg)
    complete_model_dir(str(tok_dir), str(folder), template.to_json())  # as the reward stage leaves it
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    chats = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in QA]
    chats.append([{"role": "system", "content": "be brief"}, *chats[0], {"role": "user", "content": "Repeat: path"},
                  {"role": "assistant", "content": "path path"}])
    ours = torch.tensor([score(reward, template, c[:-1], c[-1]["content"])[0] for c in chats])
    batch = hf_tok.apply_chat_template(chats, padding=True, return_tensors="pt", return_dict=True)  # right-padded
    assert (batch["input_ids"] == tok.special_ids["<|pad|>"]).any()
    with torch.no_grad():
        theirs = hf(**batch).logits.squeeze(-1)
    assert torch.allclose(ours, theirs, atol=1e-4)
