"""Forgetting measured on the pretraining text, the pretraining mix (replay), LoRA's trainable token
rows for any token (PEFT loads them), and stages that give the same figures run to run."""
import json

import pytest
import torch

from llmdata.chat import ChatTemplate
from llmdata.sample_tasks import write_tasks
from llmdata.tokenizer_io import BPETokenizer
from pipelines.cli import main
from training.data import PackedDataset
from training.export import load_model
from training.finetune import ConversationPack, load_conversations, lora_token_ids
from training.forgetting import PretrainMix, pretrain_val_loss
from training.options import LoraSection
from training.stage import TrainingInputError


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    write_tasks(str(folder), seed=0, train=300, heldout=20)
    return folder


def stage_args(stage: str, pretrained, packed, tasks, out, *extra: str) -> list[str]:
    return [stage, "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
            "--no-progress", "--set", f"{stage}.train_file={tasks / 'sft' / 'train.jsonl'}",
            "--set", f"{stage}.heldout_file={tasks / 'sft' / 'heldout.jsonl'}", "--set", f"{stage}.seq_len=64",
            "--set", f"{stage}.max_steps=6", "--set", f"{stage}.eval_every=3", "--set", f"{stage}.save_every=6",
            "--set", f"{stage}.eval_generate=8", "--set", f"{stage}.max_new_tokens=6", "--set", f"{stage}.tensorboard=false",
            "--set", f"{stage}.pretrain_data={packed[0]}", "--set", f"{stage}.forgetting_samples=6", *extra]


def test_lora_train_tokens_take_names_ids_text_and_the_answers(pretrained, tasks):
    tok = BPETokenizer.load(str(pretrained / "final"))
    examples = load_conversations(str(tasks / "sft" / "train.jsonl"), ChatTemplate(tok), 64)[0]
    answers = {t for _, labels in examples for t in labels if t != -100}
    section = LoraSection(train_tokens=["<|end|>", 5, " file list"], train_answer_tokens=False)
    ids = lora_token_ids(section, tok, examples)
    assert ids == tuple(sorted({tok.special_ids["<|end|>"], 5, *tok.encode(" file list")}))
    with_answers = lora_token_ids(LoraSection(train_tokens=[], train_answer_tokens=True), tok, examples)
    assert set(with_answers) == answers and tok.special_ids["<|end|>"] in answers  # every target, the end token too
    for bad, says in ((["<|nope|>"], "are not special tokens"), ([tok.vocab_size], "outside the vocabulary")):
        with pytest.raises(TrainingInputError, match=says):
            lora_token_ids(LoraSection(train_tokens=bad), tok, examples)


def test_pretrain_mix_draws_its_share_and_cuts_every_pack_sample_into_pieces(packed, pretrained, tasks):
    pack = PackedDataset(str(packed[0]), "train")
    tok = BPETokenizer.load(str(pretrained / "final"))
    examples = load_conversations(str(tasks / "sft" / "train.jsonl"), ChatTemplate(tok), 64)[0]
    conv = ConversationPack(examples, 64, tok.special_ids["<|pad|>"])
    mix = PretrainMix(conv, pack, 0.25, 64)
    assert mix.per_sample == 2  # pack windows of 128 -> two pieces of 64
    assert mix.pretrain_slots / len(mix) == pytest.approx(0.25, abs=0.01)
    assert mix.pretrain_slots >= 2 * len(pack)  # every piece of the pack is drawn at least once an epoch
    first = mix[mix.task_slots]  # piece 0 and 1: the halves of pack sample 0, positions kept
    second = mix[mix.task_slots + 1]
    whole = pack[0]
    for key in ("input_ids", "labels", "position_ids", "doc_ids"):
        assert torch.equal(torch.cat([first[key], second[key]]), whole[key])
    assert torch.equal(mix[3]["input_ids"], conv[3]["input_ids"]) and torch.equal(mix[len(conv) + 3]["labels"], conv[3]["labels"])
    with pytest.raises(ValueError):
        PretrainMix(conv, pack, 1.0, 64)


def test_pretrain_val_loss_is_the_token_weighted_loss_of_the_plain_model(packed, pretrained):
    val = PackedDataset(str(packed[0]), "val")
    model = load_model(str(pretrained / "final"))
    got = pretrain_val_loss(model, val, samples=5, micro_batch=2)
    total = count = 0.0
    with torch.no_grad():
        for i in range(min(5, len(val))):  # the slow path: one sample at a time, mean loss x its targets
            item = val[i]
            labels = item["labels"][None]
            n = float((labels != -100).sum())
            logits = model(item["input_ids"][None], position_ids=item["position_ids"][None], doc_ids=item["doc_ids"][None])["logits"]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1),
                                                     ignore_index=-100)
            total += float(loss) * n
            count += n
    assert got["tokens"] == count and got["samples"] == min(5, len(val))
    assert got["loss"] == pytest.approx(total / count, rel=1e-5)


def test_lora_with_answer_rows_and_pretrain_mix_reports_forgetting_and_loads_in_peft(pretrained, packed, tasks, tmp_path):
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    out = tmp_path / "lora"
    assert main(stage_args("lora", pretrained, packed, tasks, out, "--set", "lora.train_answer_tokens=true",
                           "--set", "lora.pretrain_mix=0.25", "--set", "lora.rank=4")) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    f = manifest["forgetting"]
    assert f["split"] == "val" and f["before"] > 0 and f["after"] > 0 and f["ratio"] == pytest.approx(f["after"] / f["before"])
    assert manifest["summary"]["pretrain_val_loss_before"] == f["before"]
    base = load_model(str(pretrained / "final"))
    assert f["before"] == pytest.approx(pretrain_val_loss(base, PackedDataset(str(packed[0]), "val"), 6)["loss"], rel=1e-6)
    ids = manifest["train_token_ids"]
    tok = BPETokenizer.load(str(pretrained / "final"))
    assert set(tok.encode(" file")) <= set(ids) and tok.special_ids["<|end|>"] in ids  # answer words and the roles
    assert "pretrain_data" in manifest["inputs"]  # replayed text is an input: another pack retrains
    report = (out / "report.md").read_text()
    assert "Forgetting: next-token loss on the pretraining validation text" in report
    assert "embedding/output rows trained" in report and "pretraining mix" in report
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["trainable_token_indices"] == {"embed_tokens": ids}
    # PEFT reads the adapter (answer rows as trainable tokens) onto the base's HF export: same logits as our merge
    hf = transformers.AutoModelForCausalLM.from_pretrained(pretrained / "hf", dtype=torch.float32)
    with_adapter = peft.PeftModel.from_pretrained(hf, str(out / "adapter")).eval()
    merged = load_model(str(out / "merged")).eval()
    x = torch.tensor([ids[:20] + tok.encode(" Repeat: file list")])
    with torch.no_grad():
        gap = float((merged(x)["logits"] - with_adapter(input_ids=x).logits).abs().max())
        moved = float((merged(x)["logits"] - base.eval()(x)["logits"]).abs().max())
    assert gap <= 1e-4 < moved


def test_sft_twice_gives_the_same_figures_and_every_stage_reports_forgetting(pretrained, packed, tasks, tmp_path):
    """Two runs of the same stage: identical losses, exact match and forgetting figures."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name / "06-sft"
        assert main(stage_args("sft", pretrained, packed, tasks, out, "--set", "sft.pretrain_mix=0.2")) == 0
        m = json.loads((out / "manifest.json").read_text())
        losses = [r.get("loss", r.get("val_loss")) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
        runs.append((losses, m["exact_match"]["after"], m["forgetting"]))
    assert runs[0] == runs[1]
    em = json.loads((tmp_path / "a" / "06-sft" / "manifest.json").read_text())["exact_match"]["after"]
    assert em["in_training"] + em["unseen"]["n"] == em["n"] == 8 and em["in_training"] >= 1  # "What is a + b?" repeats
    assert f"| held-out prompts also among the training prompts | {em['in_training']} of 8" in \
        (tmp_path / "a" / "06-sft" / "report.md").read_text()
    from pipelines.run_report import build

    _, sections = build(str(tmp_path / "a"))
    (table,) = [s for s in sections if s.title.startswith("Forgetting")]
    assert table.blocks[1][2][0][0] == "sft" and table.blocks[1][2][0][2] == f"{runs[0][2]['after']:,.4g}"
    for stage in ("reward", "dpo"):  # the preference stages measure it too
        out = tmp_path / "a" / stage
        kind = [f"{stage}.train_file={tasks / 'preferences' / 'train.jsonl'}",
                f"{stage}.heldout_file={tasks / 'preferences' / 'heldout.jsonl'}", f"{stage}.max_len=48",
                f"{stage}.max_steps=2", f"{stage}.eval_every=2", f"{stage}.save_every=2", f"{stage}.tensorboard=false",
                f"{stage}.pretrain_data={packed[0]}", f"{stage}.forgetting_samples=4"]
        if stage == "dpo":
            kind += ["dpo.eval_generate=2", "dpo.max_new_tokens=2", f"dpo.eval_file={tasks / 'sft' / 'heldout.jsonl'}"]
        args = [stage, "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output", str(out),
                "--no-progress"]
        for kv in kind:
            args += ["--set", kv]
        assert main(args) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        f = manifest["forgetting"]
        assert f["before"] > 0 and f["after"] > 0 and "Forgetting" in (out / "report.md").read_text()
        if stage == "dpo":  # its held-out prompts checked against the preference prompts
            em = manifest["exact_match"]["after"]
            assert em["in_training"] + em["unseen"]["n"] == em["n"] == 2


def test_a_stage_told_not_to_measure_forgetting_says_so(pretrained, packed, tasks, tmp_path):
    """forgetting_samples 0 with a pack folder known: the report gives that reason, not a missing
    pack folder (which it said before, on a GPU run of bench/rl_scale.sh)."""
    out = tmp_path / "06-sft"
    assert main(stage_args("sft", pretrained, packed, tasks, out, "--set", "sft.forgetting_samples=0",
                           "--set", "sft.max_steps=1", "--set", "sft.eval_generate=1")) == 0
    report = (out / "report.md").read_text()
    assert "| measured | no (forgetting_samples is 0) |" in report and "no pack stage folder" not in report
    assert json.loads((out / "manifest.json").read_text())["forgetting"] is None


def test_a_mix_without_pretraining_text_is_one_line(pretrained, tasks, tmp_path, capsys):
    code = main(["sft", "--config", "configs/pipeline.yaml", "--base", str(pretrained / "final"), "--output",
                 str(tmp_path / "o"), "--no-progress", "--set", f"sft.train_file={tasks / 'sft' / 'train.jsonl'}",
                 "--set", f"sft.heldout_file={tasks / 'sft' / 'heldout.jsonl'}", "--set", "sft.pretrain_mix=0.25"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "sft.pretrain_mix needs a pack stage folder" in err and "\n" not in err


def test_run_report_puts_lora_beside_sft_and_lists_forgetting(tmp_path):
    """The run report reads the stages' manifests: one exact-match table with the base model, SFT
    and LoRA columns, and one forgetting row per alignment stage."""
    def em(value, by_task):
        return {"exact_match": value, "n": 4, "by_task": by_task, "examples": []}

    base = em(0.0, {"add": 0.0, "sort": 0.0})
    stages = {"06-sft": (em(0.75, {"add": 1.0, "sort": 0.5}), {"before": 5.0, "after": 5.25}),
              "07-lora": (em(0.5, {"add": 0.5, "sort": 0.5}), {"before": 5.0, "after": 5.1})}
    for folder, (after, forgetting) in stages.items():
        (tmp_path / folder).mkdir()
        manifest = {"stage": folder[3:], "status": "complete", "summary": {"steps": 2}, "trainable_parameters": 10,
                    "exact_match": {"before": base, "after": after},
                    "forgetting": {**forgetting, "ratio": forgetting["after"] / forgetting["before"], "tokens": 100}}
        (tmp_path / folder / "manifest.json").write_text(json.dumps(manifest))
    from pipelines.run_report import build

    _, sections = build(str(tmp_path))
    (em_sec,) = [s for s in sections if "exact match" in s.title]
    table = [b for b in em_sec.blocks if b[0] == "table"][0]
    assert table[1] == ["task", "base model", "SFT", "LoRA"]
    assert table[2][0] == ["all", "0.0%", "75.0%", "50.0%"] and table[2][2] == ["sort", "0.0%", "50.0%", "50.0%"]
    assert ("p", "LoRA reaches 0.67x SFT's exact match.") in em_sec.blocks
    (forget,) = [s for s in sections if s.title.startswith("Forgetting")]
    rows = [b for b in forget.blocks if b[0] == "table"][0][2]
    assert rows == [["sft", "5", "5.25", "1.05", "100"], ["lora", "5", "5.1", "1.02", "100"]]


def test_run_report_gives_exact_match_on_the_prompts_not_trained_on(tmp_path):
    """Manifests with the overlap check: a row of exact match on the held-out prompts that are not
    training prompts, and a sentence saying how many are, per task (SFT/LoRA table and RL's)."""
    def em(value, unseen, by_task):
        return {"exact_match": value, "n": 4, "by_task": by_task, "examples": [], "in_training": 2,
                "in_training_by_task": {"add": 2, "sort": 0}, "unseen": {"exact_match": unseen, "n": 2}}

    base, tuned = em(0.0, 0.0, {"add": 0.0, "sort": 0.0}), em(0.75, 0.5, {"add": 1.0, "sort": 0.5})
    for folder in ("06-sft", "10-rl"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "manifest.json").write_text(json.dumps(
            {"stage": folder[3:], "status": "complete", "summary": {"steps": 2}, "exact_match": {"before": base, "after": tuned}}))
    from pipelines.run_report import build

    _, sections = build(str(tmp_path))
    for title, what in (("SFT: exact match", "training file"), ("RL (GRPO)", "RL prompt file")):
        (sec,) = [s for s in sections if s.title.startswith(title)]
        table = [b for b in sec.blocks if b[0] == "table"][0]
        assert table[2][1] == ["not among the training prompts (2)", "0.0%", "50.0%"]
        assert ("p", f"Held-out prompts also in the {what}: 2 of 4 (add 2); an answer to one of them can be "
                     "recalled, not worked out.") in sec.blocks


def test_run_report_says_how_many_dpo_held_out_prompts_are_preference_prompts(tmp_path):
    """DPO's section gives the exact match on the prompts not among the preference prompts and,
    like SFT's and RL's, the sentence saying how many held-out prompts are preference prompts."""
    def em(value, unseen):
        return {"exact_match": value, "n": 4, "by_task": {"add": value}, "examples": [], "in_training": 3,
                "in_training_by_task": {"add": 3}, "unseen": {"exact_match": unseen, "n": 1}}

    held = {"pairs": 6, "reward_accuracy": 0.5, "loglik_accuracy": 0.5, "mean_margin": 0.1, "by_task": {"add": 0.5}}
    (tmp_path / "09-dpo").mkdir()
    (tmp_path / "09-dpo" / "manifest.json").write_text(json.dumps(
        {"stage": "dpo", "status": "complete", "summary": {"steps": 2}, "heldout": {"before": held, "after": held},
         "exact_match": {"before": em(0.25, 0.0), "after": em(0.5, 1.0)}}))
    from pipelines.run_report import build

    _, sections = build(str(tmp_path))
    (sec,) = [s for s in sections if s.title.startswith("DPO on")]
    rows = next(b for b in sec.blocks if b[0] == "table")[2]
    assert ["... on the 1 not among the preference prompts", "0.0%", "100.0%"] in rows
    note = ("Held-out prompts also in the preference file: 3 of 4 (add 3); an answer to one of them can be "
            "recalled, not worked out.")
    assert ("p", note) in sec.blocks
