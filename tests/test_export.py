"""The Hugging Face export: transformers loads it and computes our logits; PEFT loads our adapters."""
import json
from pathlib import Path

import pytest
import torch

from llmdata.chat import ChatTemplate
from llmdata.tokenizer_io import BPETokenizer
from pipelines.cli import main
from training.export import load_model, save_model
from training.lora import apply_lora, merge_lora, save_adapter, train_token_rows
from training.model import ModelConfig, Transformer
from training.reward import RewardModel, pad_pairs, save_reward_model
from training.stage import complete_model_dir

transformers = pytest.importorskip("transformers")

TOL = 1e-4


def model_folder(tmp_path: Path, tok: Path, name: str, **cfg) -> tuple[Path, Transformer]:
    """A randomly initialized model saved as a stage would save it, with the test tokenizer."""
    torch.manual_seed(0)
    vocab = BPETokenizer.load(str(tok)).vocab_size
    model = Transformer(ModelConfig(vocab_size=vocab, d_model=64, n_layers=2, n_heads=4, max_seq_len=128, **cfg)).eval()
    folder = tmp_path / name
    save_model(str(folder), model.state_dict(), model.cfg)
    complete_model_dir(str(tok), str(folder), ChatTemplate(BPETokenizer.load(str(tok))).to_json())
    return folder, model


def logits_gap(ours: Transformer, hf, ids: torch.Tensor) -> float:
    with torch.no_grad():
        return float((ours(ids)["logits"] - hf(ids).logits).abs().max())


@pytest.mark.parametrize("cfg", [
    {"n_kv_heads": 2},  # grouped-query, tied embeddings
    {"n_kv_heads": 4, "tie_embeddings": False, "rope_theta": 500000.0},
    {"n_kv_heads": 1, "sliding_window": 16},  # multi-query, exported as Mistral
])
def test_transformers_computes_our_logits(packed, tmp_path, cfg):
    folder, model = model_folder(tmp_path, packed[1], "model", **cfg)
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    assert type(hf).__name__ == ("MistralForCausalLM" if "sliding_window" in cfg else "LlamaForCausalLM")
    ids = torch.randint(0, model.cfg.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1))
    assert logits_gap(model, hf, ids) <= TOL
    specials = BPETokenizer.load(str(folder)).special_ids  # a chat model (it has a template): it stops at its end of turn
    assert hf.config.eos_token_id == [specials["<|end|>"], specials["<|endoftext|>"]]


def test_the_exported_tokenizer_gives_our_ids_and_our_chat_prompts(packed, tmp_path):
    folder, _ = model_folder(tmp_path, packed[1], "model", n_kv_heads=2)
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "hf")]) == 0
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ours = BPETokenizer.load(str(folder))
    for text in ["plain words.", "  def f(x):\n\treturn x**2  ", "naïve café 東京 🙂🙂", "a" * 300, ""]:
        assert hf_tok(text)["input_ids"] == ours.encode(text)
        assert hf_tok.decode(ours.encode(text)) == text
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "sort: b a c"}]
    prompt = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert hf_tok(prompt)["input_ids"] == ChatTemplate(ours).prompt(messages)
    assert hf_tok.eos_token == "<|end|>" and hf_tok.pad_token == "<|pad|>"  # a chat model's eos is its end of turn


def test_the_tokenizer_stage_folder_is_an_autotokenizer_with_its_special_tokens(packed):
    """AutoTokenizer on 03-tokenizer itself: our ids, and the reserved tokens known as special."""
    hf_tok = transformers.AutoTokenizer.from_pretrained(packed[1])
    ours = BPETokenizer.load(str(packed[1]))
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.pad_token == "<|pad|>"
    assert set(hf_tok.all_special_tokens) == set(ours.special_ids)
    assert all(hf_tok.convert_tokens_to_ids(t) == i for t, i in ours.special_ids.items())
    text = "x = 1  # 東京\n<|user|>hi"
    assert hf_tok(text, split_special_tokens=True)["input_ids"] == ours.encode(text)  # reserved text as text, as ours
    assert ours.special_ids["<|user|>"] in hf_tok(text)["input_ids"]  # HF's default: the special token
    assert ours.special_ids["<|user|>"] not in ours.encode(text)
    assert hf_tok.decode(ours.encode(text)) == text


def test_a_plain_language_model_stops_at_end_of_text(packed, tmp_path):
    """No chat template (a pretrained model): eos is <|endoftext|> alone, as the model was trained."""
    folder, _ = model_folder(tmp_path, packed[1], "plain", n_kv_heads=2)
    (folder / "chat_template.json").unlink()
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "hf")]) == 0
    eot = BPETokenizer.load(str(folder)).eot_id
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["eos_token_id"] == eot
    assert json.loads((tmp_path / "hf" / "generation_config.json").read_text())["eos_token_id"] == [eot]
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.chat_template is None


def test_a_reward_model_exports_as_sequence_classification(packed, tmp_path):
    _, backbone = model_folder(tmp_path, packed[1], "backbone", n_kv_heads=2)
    reward = RewardModel(backbone).eval()
    folder = tmp_path / "reward"
    save_reward_model(str(folder), reward.state_dict(), reward.cfg)
    complete_model_dir(str(packed[1]), str(folder))
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    pad = BPETokenizer.load(str(folder)).special_ids["<|pad|>"]
    batch = pad_pairs([{"chosen": [5, 6, 7, 8, 9, 10], "rejected": [5, 6, 7]}], pad_id=pad)  # right-padded
    with torch.no_grad():
        ours = reward(**batch)
        theirs = hf(batch["input_ids"]).logits.squeeze(-1)
    assert torch.allclose(ours, theirs, atol=TOL)


def test_peft_loads_our_adapter_onto_the_exported_base(packed, tmp_path):
    peft = pytest.importorskip("peft")
    base, _ = model_folder(tmp_path, packed[1], "base", n_kv_heads=2)
    assert main(["export", "--model", str(base), "--output", str(tmp_path / "base-hf")]) == 0
    targets = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
    tuned = load_model(str(base))
    apply_lora(tuned, targets, rank=4, alpha=8, dropout=0.0)
    roles = [BPETokenizer.load(str(base)).special_ids[t] for t in ("<|user|>", "<|assistant|>", "<|end|>")]
    train_token_rows(tuned, roles)  # PEFT's trainable tokens, tied between embedding and head
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_" in name or name.endswith(".rows"):
                p.normal_(std=0.05)
    save_adapter(str(tmp_path / "adapter"), tuned.state_dict(), tuned.cfg, 4, 8, 0.0, targets, str(tmp_path / "base-hf"),
                 tuple(roles))
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "base-hf", dtype=torch.float32)
    with_adapter = peft.PeftModel.from_pretrained(hf, str(tmp_path / "adapter")).eval()
    ids = torch.randint(0, tuned.cfg.vocab_size, (2, 40), generator=torch.Generator().manual_seed(2))
    ids[:, ::7] = roles[0]  # the trained rows are read in the input and scored in the output
    tuned.eval()
    with torch.no_grad():
        assert float((tuned(ids)["logits"] - with_adapter(input_ids=ids).logits).abs().max()) <= TOL
        merged = merge_lora(tuned)
    assert logits_gap(merged, with_adapter.merge_and_unload(), ids) <= TOL


def test_models_hf_cannot_express_are_refused_in_one_line(packed, tmp_path, capsys):
    folder, _ = model_folder(tmp_path, packed[1], "alibi", position="alibi", n_kv_heads=4)
    assert main(["export", "--model", str(folder), "--output", str(tmp_path / "hf")]) == 2
    assert "position 'alibi' has no Hugging Face Llama equivalent" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "hf2")]) == 2
    assert "has no model.safetensors" in capsys.readouterr().err
    broken, _ = model_folder(tmp_path, packed[1], "broken", n_kv_heads=2)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    assert main(["export", "--model", str(broken), "--output", str(tmp_path / "hf3")]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err and not (tmp_path / "hf3").exists()
    (broken / "model_config.json").write_text("{broken")
    assert main(["export", "--model", str(broken), "--output", str(tmp_path / "hf3")]) == 2
    assert "not a usable model config" in capsys.readouterr().err


def test_the_pretrain_stage_writes_a_loadable_hf_folder(pretrained):
    hf_dir = pretrained / "hf"
    manifest = json.loads((pretrained / "manifest.json").read_text())
    assert manifest["outputs"]["hf"] == "hf/"
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    ours = load_model(str(pretrained / "final")).eval()
    ids = torch.randint(0, ours.cfg.vocab_size, (1, 100), generator=torch.Generator().manual_seed(4))
    assert logits_gap(ours, hf, ids) <= TOL


def test_a_tokenizer_with_other_reserved_tokens_still_loads(tmp_path):
    """tokenizer.specials is configurable: without <|endoftext|> and <|pad|> there is no eos or pad, not an error."""
    from llmdata.bpe import PATTERNS, learn_merges

    tok = BPETokenizer(learn_merges({b" file": 5, b" list": 5}, 10).merges, PATTERNS["gpt4"], ("<|sep|>",))
    tok.save(str(tmp_path))
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert hf_tok.eos_token is None and hf_tok.pad_token is None and hf_tok.all_special_tokens == ["<|sep|>"]
    assert hf_tok(" file list<|sep|>")["input_ids"] == tok.encode(" file list") + [tok.special_ids["<|sep|>"]]
