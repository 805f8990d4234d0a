"""Search at generation time: beam search equal to transformers' on the exported model, token for
token, and best-of-N with a reward model (`llmpipe generate --num-beams / --best-of`)."""
import copy
import json
import math
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmdata.bpe import PATTERNS, learn_merges
from llmdata.chat import ChatTemplate, inputs_and_labels
from llmdata.tokenizer_io import BPETokenizer
from pipelines.cli import main
from training.best_of_n import best_of_n, select
from training.export import save_model
from training.generate import Sampling, beam_search, chat_replies, chat_reply, greedy_chat_replies, inference_device
from training.model import ModelConfig, Transformer, sample_next
from training.reward import RewardModel, save_reward_model, score
from training.stage import complete_model_dir

transformers = pytest.importorskip("transformers")

QA = [("What is 3 + 4?", "7"), ("Repeat: file list", "file list"), ("Reverse the words: path type data", "data type path"),
      ("Sort: c b a", "a b c")]
PROMPTS = ["What is 3 + 4?", "Repeat: path type", "Reverse the words: file list data", "Sort: b a"]
# prompts where the random model's answer depends on early_stopping (True, or "never" vs False)
STOPPING_PROMPTS = ["3 3 4? 4?", "words: is is", "data 3 + data"]
MAX_NEW = 10


def make_tokenizer(folder: Path, merges: int) -> Path:
    text = " ".join(q + " " + a for q, a in QA) * 20
    counts = {(" " + w).encode(): 5 for w in text.split()}
    BPETokenizer(learn_merges(counts, merges).merges, PATTERNS["gpt4"]).save(str(folder))
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Models this small run several times faster on one thread of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tok"), 300)


def tiny(vocab: int, seed: int = 0, init_std: float = 0.02) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(ModelConfig(vocab_size=vocab, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64,
                                   ffn_multiple_of=16, init_std=init_std)).eval()


def fit(model: Transformer, template: ChatTemplate, steps: int) -> Transformer:
    """A few full-batch steps on QA: a model that answers some prompts and closes its turn with
    <|end|>, and is unsure elsewhere (where beams disagree with greedy)."""
    rows = [inputs_and_labels(*template.encode([{"role": "user", "content": q}, {"role": "assistant", "content": a}]))
            for q, a in QA]
    width = max(len(i) for i, _ in rows)
    ids = torch.tensor([i + [0] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(ids, labels=labels)["loss"].backward()
        opt.step()
    return model.eval()


def save(model: Transformer, tok_dir: Path, folder: Path, chat: bool) -> Path:
    save_model(str(folder), model.state_dict(), model.cfg)
    template = ChatTemplate(BPETokenizer.load(str(tok_dir)))
    complete_model_dir(str(tok_dir), str(folder), template.to_json() if chat else None)
    return folder


@pytest.fixture(scope="module")
def models(tok_dir, tmp_path_factory) -> dict[str, tuple[Path, Transformer]]:
    """A chat model trained a little ("chat", stops at <|end|> or <|endoftext|>) and a random one
    with larger weights ("random": peaked, arbitrary distributions), each saved and exported."""
    tok = BPETokenizer.load(str(tok_dir))
    root = tmp_path_factory.mktemp("models")
    built = {"chat": (fit(tiny(tok.vocab_size), ChatTemplate(tok), steps=25), True),
             "random": (tiny(tok.vocab_size, seed=1, init_std=0.3), False)}
    out = {}
    for name, (model, chat) in built.items():
        folder = save(model, tok_dir, root / name, chat)
        assert main(["export", "--model", str(folder), "--output", str(root / f"{name}-hf")]) == 0
        out[name] = (folder, model)
    return out


def prompt_ids(name: str, tok: BPETokenizer, prompt: str) -> list[int]:
    return ChatTemplate(tok).prompt([{"role": "user", "content": prompt}]) if name == "chat" else tok.encode(prompt)


def stops(name: str, model: Transformer, tok: BPETokenizer) -> list[int]:
    """The chat model's export eos ids; for the random model, two tokens its beams write third
    after the first two prompts, so that beams reach an eos at various lengths."""
    if name == "chat":
        return [tok.special_ids["<|end|>"], tok.eot_id]
    return sorted({beam_search(model, tok.encode(p), 2, MAX_NEW, [])[0][2] for p in PROMPTS[:2]})


@pytest.mark.parametrize("name", ["chat", "random"])
def test_beam_search_equals_transformers_token_for_token(models, name):
    folder, model = models[name]
    hf = hf_model(folder)
    tok = BPETokenizer.load(str(folder))
    eos = stops(name, model, tok)
    ended, differs, by_stopping = Counter(), 0, Counter()
    for prompt in PROMPTS + (STOPPING_PROMPTS if name == "random" else []):
        ids = prompt_ids(name, tok, prompt)
        greedy = model.generate(torch.tensor([ids]), MAX_NEW, eos_id=eos[0])[0, len(ids):].tolist()
        for k in (2, 4):
            for lp in (1.0, 2.0, -0.5):
                answers = {}
                for es in (False, True, "never"):
                    ours, our_score = beam_search(model, ids, k, MAX_NEW, eos, lp, es)
                    theirs, their_score = hf_beam_search(hf, ids, k, lp, es, eos, tok.special_ids["<|pad|>"])
                    assert ours == theirs, (prompt, k, lp, es)
                    assert our_score == pytest.approx(their_score, rel=1e-5, abs=1e-4)
                    ended[ours[-1] in eos and len(ours) < MAX_NEW] += 1
                    differs += ours[: len(greedy)] != greedy[: len(ours)]
                    answers[es] = ours
                by_stopping["True"] += answers[True] != answers[False]
                by_stopping["never"] += answers["never"] != answers[False]
    # the comparison covers hypotheses that stop at eos early and ones that run to max_new_tokens,
    # beams that find something greedy decoding does not, and (random model) answers that each
    # early_stopping setting changes
    assert ended[True] and ended[False], ended
    assert differs, "every beam result was the greedy one: the test would not see a broken beam search"
    if name == "random":
        assert by_stopping["True"] and by_stopping["never"], by_stopping


def hf_beam_search(hf, ids: list[int], k: int, lp: float, es, eos: list[int], pad: int) -> tuple[list[int], float]:
    """transformers' beam search: the best hypothesis's new ids and its length-normalized score."""
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                          num_beams=k, length_penalty=lp, early_stopping=es, do_sample=False, max_new_tokens=MAX_NEW,
                          eos_token_id=eos, pad_token_id=pad, return_dict_in_generate=True, output_scores=True)
    return out.sequences[0, len(ids):].tolist(), float(out.sequences_scores[0])


def test_beam_search_with_more_eos_ids_than_beams(models):
    """Three eos ids, the model's 2nd to 4th likeliest first tokens, and two beams: more candidates end
    at once than there are beams, and only by keeping (1 + 3) x 2 candidates per step (not 2 x 2)
    do two beams keep running. On this prompt the answer depends on it (found by search)."""
    folder, model = models["random"]
    tok = BPETokenizer.load(str(folder))
    ids = tok.encode("Sort: Reverse type + words: What")
    eos = model(torch.tensor([ids]))["logits"][0, -1].topk(4).indices[1:].tolist()
    for lp in (1.0, 2.0):
        ours, our_score = beam_search(model, ids, 2, MAX_NEW, eos, lp)
        theirs, their_score = hf_beam_search(hf_model(folder), ids, 2, lp, False, eos, tok.special_ids["<|pad|>"])
        assert ours == theirs and len(ours) == MAX_NEW
        assert our_score == pytest.approx(their_score, rel=1e-5, abs=1e-4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40), k=st.integers(2, 5), lp=st.floats(-2.0, 3.0),
       es=st.sampled_from([False, True, "never"]))
def test_beam_search_equals_transformers_on_any_text(models, text, k, lp, es):
    """Any Unicode prompt (a byte-level BPE encodes it all), any beam count and length penalty."""
    folder, model = models["random"]
    tok = BPETokenizer.load(str(folder))
    ids = tok.encode(text)[-40:]
    eos = stops("random", model, tok)
    ours, our_score = beam_search(model, ids, k, MAX_NEW, eos, lp, es)
    theirs, their_score = hf_beam_search(hf_model(folder), ids, k, lp, es, eos, tok.special_ids["<|pad|>"])
    assert ours == theirs
    assert our_score == pytest.approx(their_score, rel=1e-5, abs=1e-4)


_HF: dict = {}


def hf_model(folder: Path):
    """The exported model, loaded once per folder."""
    if folder not in _HF:
        _HF[folder] = transformers.AutoModelForCausalLM.from_pretrained(folder.parent / f"{folder.name}-hf",
                                                                        dtype=torch.float32).eval()
    return _HF[folder]


def test_length_penalty_and_early_stopping_change_the_answer(models):
    """Not a no-op: over the prompts, the knobs pick other hypotheses (transformers agrees above)."""
    folder, model = models["random"]
    tok = BPETokenizer.load(str(folder))
    eos = stops("random", model, tok)
    results = {(lp, es): [beam_search(model, tok.encode(p), 4, MAX_NEW, eos, lp, es)[0] for p in PROMPTS]
               for lp in (2.0, -0.5) for es in (False, True)}
    assert results[(2.0, False)] != results[(-0.5, False)]
    longer = sum(len(a) for a in results[(2.0, False)]) >= sum(len(a) for a in results[(-0.5, False)])
    assert longer  # a positive penalty favours longer hypotheses


def test_cli_num_beams_is_beam_search(models, capsys):
    folder, model = models["chat"]
    tok = BPETokenizer.load(str(folder))
    capsys.readouterr()
    args = ["generate", "--model", str(folder), "--chat", "--max-new-tokens", str(MAX_NEW), "--num-beams", "4",
            "--length-penalty", "2.0", "--early-stopping", "never"]
    assert main(args + [f"--prompt={p}" for p in PROMPTS]) == 0
    got = [json.loads(line)["completion"] for line in capsys.readouterr().out.splitlines()]
    eos = stops("chat", model, tok)
    for prompt, answer in zip(PROMPTS, got, strict=True):
        best, _ = beam_search(model, prompt_ids("chat", tok, prompt), 4, MAX_NEW, eos, 2.0, "never")
        assert answer == tok.decode([t for t in best if t not in eos]).strip()


def test_cli_beam_errors_are_one_line(models, capsys):
    folder, _ = models["chat"]
    capsys.readouterr()
    assert main(["generate", "--model", str(folder), "--prompt", "hi", "--num-beams", "2", "--temperature", "0.7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "beam" in err
    assert main(["generate", "--model", str(folder), "--prompt", "hi", "--num-beams", "2", "--length-penalty", "nan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "length_penalty" in err
    with pytest.raises(SystemExit):  # argparse: one usage line and one error line
        main(["generate", "--model", str(folder), "--prompt", "hi", "--num-beams", "0"])


# Best-of-N


def reward_folder(tok_dir: Path, root: Path, sign: float) -> tuple[Path, RewardModel]:
    """A reward model on a random backbone whose value head is `sign` x a fixed vector: sign -1
    ranks every set of answers in the reverse order of sign +1, sign 0 scores all answers 0."""
    reward = RewardModel(tiny(BPETokenizer.load(str(tok_dir)).vocab_size, seed=5)).eval()
    with torch.no_grad():
        reward.value.weight.copy_(sign * torch.linspace(-1, 1, reward.cfg.d_model)[None])
    folder = root / f"reward{sign:+.0f}"
    save_reward_model(str(folder), reward.state_dict(), reward.cfg)
    complete_model_dir(str(tok_dir), str(folder))
    return folder, reward


@pytest.fixture(scope="module")
def rewards(tok_dir, tmp_path_factory) -> dict[float, tuple[Path, RewardModel]]:
    root = tmp_path_factory.mktemp("rewards")
    return {s: reward_folder(tok_dir, root, s) for s in (1.0, -1.0, 0.0)}


SAMPLE = Sampling(max_new_tokens=MAX_NEW, temperature=1.0)


def test_best_of_n_picks_the_highest_reward_and_is_deterministic(models, rewards):
    _, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(models["chat"][0])))
    prompt = "Sort: b a"
    best, scored, cut = best_of_n(policy, rewards[1.0][1], template, prompt, 6, SAMPLE, torch.Generator().manual_seed(3))
    answers = [a for a, _ in scored]
    assert len(set(answers)) > 2  # sampled, not one answer six times
    assert answers == chat_replies(policy, template, prompt, SAMPLE, 6, torch.Generator().manual_seed(3))
    assert [r for _, r in scored] == [score(rewards[1.0][1], template, prompt, a)[0] for a in answers]
    assert cut == [False] * 6
    assert best == max(scored, key=lambda x: x[1])[0] and best != min(scored, key=lambda x: x[1])[0]
    # the same seed: the same answers and pick; the negated head picks the lowest of the same answers
    again = best_of_n(policy, rewards[1.0][1], template, prompt, 6, SAMPLE, torch.Generator().manual_seed(3))
    assert again == (best, scored, cut)
    flipped, flipped_scored, _ = best_of_n(policy, rewards[-1.0][1], template, prompt, 6, SAMPLE, torch.Generator().manual_seed(3))
    assert [a for a, _ in flipped_scored] == answers
    assert [r for _, r in flipped_scored] == pytest.approx([-r for _, r in scored])
    assert flipped == min(scored, key=lambda x: x[1])[0]
    # all rewards equal (a zero head): the first sample wins
    first, zero, _ = best_of_n(policy, rewards[0.0][1], template, prompt, 6, SAMPLE, torch.Generator().manual_seed(3))
    assert {r for _, r in zero} == {0.0} and first == answers[0]
    other = best_of_n(policy, rewards[1.0][1], template, prompt, 6, SAMPLE, torch.Generator().manual_seed(4))
    assert [a for a, _ in other[1]] != answers  # another seed, other samples


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=30), n=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_best_of_n_on_any_prompt_returns_a_top_scored_candidate(models, rewards, text, n, seed):
    _, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(models["chat"][0])))
    sampling = Sampling(max_new_tokens=4, temperature=1.0, top_k=20)
    best, scored, _ = best_of_n(policy, rewards[1.0][1], template, text, n, sampling, torch.Generator().manual_seed(seed))
    assert len(scored) == n and best == next(a for a, r in scored if r == max(r for _, r in scored))


def test_best_of_n_rejects_what_cannot_work(models, rewards):
    _, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(models["chat"][0])))
    reward = rewards[1.0][1]
    with pytest.raises(ValueError, match="N from 1 to"):
        best_of_n(policy, reward, template, "hi", 0, SAMPLE)
    with pytest.raises(ValueError, match="temperature"):
        best_of_n(policy, reward, template, "hi", 4, Sampling(max_new_tokens=4))
    other = RewardModel(tiny(policy.cfg.vocab_size + 1))
    with pytest.raises(ValueError, match="vocabulary"):
        best_of_n(policy, other, template, "hi", 2, SAMPLE)


def test_cli_best_of_n_returns_the_best_with_every_candidate(models, rewards, capsys):
    folder, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(folder)))
    capsys.readouterr()
    assert main(["generate", "--model", str(folder), "--chat", "--max-new-tokens", str(MAX_NEW), "--temperature", "1.0",
                 "--best-of", "5", "--reward-model", str(rewards[1.0][0]), "--seed", "7",
                 "--prompt", "Sort: b a", "--prompt", "What is 3 + 4?"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    generator = torch.Generator().manual_seed(7)
    for row in rows:  # the prompts share one generator, in order, as the CLI's
        best, scored, _ = best_of_n(policy, rewards[1.0][1], template, row["prompt"], 5, SAMPLE, generator)
        assert row["completion"] == best and len(row["candidates"]) == 5
        assert [(c["completion"], c["reward"]) for c in row["candidates"]] == scored
        assert not any("cut" in c for c in row["candidates"])  # short prompts fit
        assert row["reward"] == max(r for _, r in scored)


@pytest.mark.parametrize("case", ["missing", "language-model", "other-tokenizer", "zero", "greedy", "no-chat", "no-n",
                                  "select-alone", "vote-temperature", "vote-temperature-nan"])
def test_cli_best_of_n_errors_are_one_line(models, rewards, tok_dir, tmp_path, capsys, case):
    folder, _ = models["chat"]
    reward_dir = rewards[1.0][0]
    base = ["generate", "--model", str(folder), "--prompt", "hi", "--chat", "--temperature", "1.0"]
    extra = {"missing": ["--best-of", "3", "--reward-model", str(tmp_path / "nowhere")],
             "language-model": ["--best-of", "3", "--reward-model", str(folder)],
             "greedy": ["--best-of", "3", "--reward-model", str(reward_dir), "--temperature", "0"],
             "no-n": ["--reward-model", str(reward_dir)],
             "select-alone": ["--select", "vote"],
             "vote-temperature": ["--best-of", "3", "--reward-model", str(reward_dir), "--select", "max",
                                  "--vote-temperature", "5"]}
    if case == "other-tokenizer":  # a reward model trained with another vocabulary
        other_tok = make_tokenizer(tmp_path / "tok2", 200)
        other_dir, _ = reward_folder(other_tok, tmp_path, 1.0)
        extra[case] = ["--best-of", "3", "--reward-model", str(other_dir)]
    if case in ("zero", "vote-temperature-nan"):
        flag, bad = ("--best-of", ["--best-of", "0"]) if case == "zero" else \
            ("--vote-temperature", ["--best-of", "3", "--select", "vote", "--vote-temperature", "nan"])
        with pytest.raises(SystemExit):  # argparse: a usage line and one error line
            main(base + bad + ["--reward-model", str(reward_dir)])
        assert flag in capsys.readouterr().err
        return
    args = base + extra.get(case, [])
    if case == "no-chat":
        args = [a for a in base if a != "--chat"] + ["--best-of", "3", "--reward-model", str(reward_dir)]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmpipe: error: ") and err.count("\n") == 1, err
    expect = {"missing": "not found", "language-model": "not a reward model", "other-tokenizer": "another tokenizer",
              "greedy": "temperature", "no-chat": "--chat", "no-n": "--best-of", "select-alone": "give --best-of N",
              "vote-temperature": "give --select vote"}[case]
    assert expect in err, err


def test_reward_weighted_vote_by_hand():
    """Identical answers pool exp((reward - max) / T): three votes for "12" outweigh one higher-scored
    "13" at T 2 (e^-1 + e^-0.25 + e^-0.5 = 1.75 > 1); at T 0.1 the vote is the highest reward."""
    scored = [("12", 1.0), ("13", 3.0), (" 12", 2.5), ("12 ", 2.0)]
    assert select(scored, "max") == "13"
    assert select(scored, "vote", 2.0) == "12"  # the first-drawn spelling of the pooled answer
    assert select(scored, "vote", 0.1) == "13"
    assert select([("a", 0.0), ("b", 0.0)], "vote") == "a"  # ties go to the answer drawn first
    for bad, says in (([], "nothing to choose"), (scored, "selection must be")):
        with pytest.raises(ValueError, match=says):
            select(bad, "median" if bad else "max")
    with pytest.raises(ValueError, match="vote_temperature"):
        select(scored, "vote", 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["7", " 7", "8", "nine", ""]), st.floats(-20, 20, allow_nan=False)),
                min_size=1, max_size=12))
def test_vote_spans_max_and_majority(scored):
    """A tiny vote temperature chooses what "max" chooses (when the top reward is unique); a huge one
    is plain majority voting (one of the most frequent answers)."""
    rewards = [r for _, r in scored]
    if rewards.count(max(rewards)) == 1 and sorted(rewards)[-1] - sorted(rewards + [-1e9])[-2] > 1e-3:
        assert select(scored, "vote", 1e-6).strip() == select(scored, "max").strip()
    counts = Counter(a.strip() for a, _ in scored)
    assert counts[select(scored, "vote", 1e9).strip()] == max(counts.values())  # among equal counts the reward decides


def test_cli_best_of_n_vote_is_select_over_the_same_candidates(models, rewards, capsys):
    folder, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(folder)))
    capsys.readouterr()
    assert main(["generate", "--model", str(folder), "--chat", "--max-new-tokens", str(MAX_NEW), "--temperature", "1.0",
                 "--best-of", "6", "--reward-model", str(rewards[1.0][0]), "--seed", "7", "--select", "vote",
                 "--vote-temperature", "0.5", "--prompt", "Sort: b a", "--prompt", "What is 3 + 4?"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    generator = torch.Generator().manual_seed(7)
    for row in rows:
        _, scored, _ = best_of_n(policy, rewards[1.0][1], template, row["prompt"], 6, SAMPLE, generator)
        assert [(c["completion"], c["reward"]) for c in row["candidates"]] == scored
        assert row["completion"] == select(scored, "vote", 0.5)
        assert row["reward"] == next(r for a, r in scored if a == row["completion"])


@pytest.mark.parametrize("flags, says", [
    (["--seed", str(2 ** 80)], "--seed"),
    (["--input", "DIR"], "Is a directory"),
    (["--output", "DIR"], "Is a directory"),
    (["--output", "DIR/no/such/o.jsonl"], "No such file or directory"),
    (["--device", "gpu0"], "--device 'gpu0' is not a device"),
    (["--device", "meta"], "runs on the CPU or a CUDA GPU"),
    (["--device", "cuda:64"], "torch sees"),  # no machine has 65 GPUs; a CPU build sees none
    (["--max-new-tokens", "64"], "--max-new-tokens 64 leaves no room for the prompt"),  # the model's max_seq_len is 64
])
def test_cli_generate_paths_and_seeds_a_user_gets_wrong_are_one_line(models, tmp_path, capsys, flags, says):
    folder, _ = models["chat"]
    flags = [f.replace("DIR", str(tmp_path)) for f in flags]
    args = ["generate", "--model", str(folder), "--chat", "--max-new-tokens", "2", *flags]
    if "--input" not in flags:
        args += ["--prompt", "hi"]
    capsys.readouterr()
    if flags[0] == "--seed":
        with pytest.raises(SystemExit):
            main(args)
        assert says in capsys.readouterr().err
        return
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmpipe: error: ") and err.count("\n") == 1 and says in err, err


def test_cli_generate_on_the_device_auto_picks_gives_the_cpu_answers_here(models, rewards, capsys):
    """--device auto is the CPU on a machine without a GPU: the same sampled and best-of answers as
    --device cpu, for the same seed (on a GPU the answers are the GPU generator's draws)."""
    folder, _ = models["chat"]
    args = ["generate", "--model", str(folder), "--chat", "--max-new-tokens", str(MAX_NEW), "--temperature", "1.0",
            "--best-of", "3", "--reward-model", str(rewards[1.0][0]), "--seed", "5", "--prompt", "Sort: b a"]
    outputs = []
    for device in ("cpu", "auto"):
        capsys.readouterr()
        assert main([*args, "--device", device]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and len(json.loads(outputs[0])["candidates"]) == 3
    if not torch.cuda.is_available():
        assert str(inference_device("auto")) == "cpu"


def test_cli_generate_never_writes_over_its_input_and_a_full_disk_or_closed_pipe_is_no_traceback(models, tmp_path,
                                                                                                  capsys, monkeypatch):
    import errno

    folder, _ = models["chat"]
    rows = tmp_path / "p.jsonl"
    rows.write_text('{"prompt": "Sort: b a"}\n')
    args = ["generate", "--model", str(folder), "--chat", "--max-new-tokens", "2", "--input", str(rows)]
    capsys.readouterr()
    assert main([*args, "--output", str(rows)]) == 2
    assert "is the input file" in capsys.readouterr().err and rows.read_text() == '{"prompt": "Sort: b a"}\n'
    for raised, code, says in ((OSError(errno.ENOSPC, "No space left on device"), 2, "No space left on device"),
                               (BrokenPipeError(errno.EPIPE, "Broken pipe"), 141, "")):
        def failing(*a, raised=raised, **k):
            raise raised

        monkeypatch.setattr("training.generate.chat_reply", failing)
        assert main(args) == code
        err = capsys.readouterr().err
        assert err == (f"llmpipe: error: {says}\n" if says else "")


def test_a_chat_answer_ends_at_any_stop_token_as_transformers_does(models, monkeypatch):
    """An end-of-text before the end of the turn ends the answer (transformers' generate stops at
    every id in generation_config's eos_token_id, which lists both)."""
    folder, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(folder)))
    a, b, c = (template.tok.encode(ch)[0] for ch in "abc")

    def scripted(ids, max_new_tokens, **kwargs):
        return torch.tensor([row.tolist() + [a, b, template.eot_id, c, template.end_id] for row in ids])

    monkeypatch.setattr(policy, "generate", scripted)
    for sampling in (Sampling(max_new_tokens=8), SAMPLE):
        assert chat_replies(policy, template, "hi", sampling, 2) == [template.tok.decode([a, b]).strip()] * 2


@pytest.mark.parametrize("content, says", [(b"not json\n[1]\n", "none of the 2 rows"), (b"", "holds no rows")])
def test_cli_generate_with_nothing_usable_exits_2_after_writing_its_error_rows(models, tmp_path, capsys, content, says):
    folder, _ = models["chat"]
    rows = tmp_path / "p.jsonl"
    rows.write_bytes(content)
    capsys.readouterr()
    assert main(["generate", "--model", str(folder), "--chat", "--max-new-tokens", "2", "--input", str(rows)]) == 2
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == content.count(b"\n") and says in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize("content, says", [(b"not json\n[1]\n", "none of the 2 rows of .* could be used .the first: line 1: ValueError"),
                                           (b"", "holds no rows")])
def test_generate_and_reward_score_with_nothing_usable_leave_an_earlier_output_whole(models, rewards, tmp_path, capsys,
                                                                                     content, says):
    """A run that ends in an error (exit 2) writes no --output file: an earlier one stays as it was."""
    rows = tmp_path / "p.jsonl"
    rows.write_bytes(content)
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier run's rows\n")
    for command in (["generate", "--model", str(models["chat"][0]), "--chat", "--max-new-tokens", "2"],
                    ["reward", "score", "--model", str(rewards[1.0][0])]):
        capsys.readouterr()
        assert main([*command, "--input", str(rows), "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert re.search(says, err) and err.count("\n") == 1, err
        assert out.read_text() == "an earlier run's rows\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "p.jsonl"]


def test_generate_to_dev_stdout_appends_under_a_shell_and_writes_to_a_pipe(models, tmp_path):
    """`llmpipe generate --output /dev/stdout >> app.jsonl` keeps app.jsonl's earlier lines, and
    `... | cat` gets the rows; the summary line goes to stderr, so stdout holds JSON lines only."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pipelines.cli", "generate", "--model", str(models["chat"][0]), "--chat",
               "--max-new-tokens", "2", "--prompt", "Sort: b a", "--output", "/dev/stdout"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    appended = tmp_path / "app.jsonl"
    appended.write_text('{"earlier": 1}\n')
    with open(appended, "a") as shell:
        done = subprocess.run(command, stdout=shell, stderr=subprocess.PIPE, text=True, env=env)
    lines = [json.loads(x) for x in appended.read_text().splitlines()]
    assert lines[0] == {"earlier": 1} and [x["prompt"] for x in lines[1:]] == ["Sort: b a"]
    assert done.returncode == 0 and "1 prompts (0 bad) -> /dev/stdout" in done.stderr, done.stderr
    piped = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert piped.returncode == 0 and [json.loads(x)["prompt"] for x in piped.stdout.splitlines()] == ["Sort: b a"]


def test_reward_score_makes_a_non_finite_reward_an_error_row_never_a_nan_in_the_json(models, rewards, tmp_path,
                                                                                      capsys, monkeypatch):
    """A NaN reward is no score (and `NaN` is no JSON): the row is an error row with its reason."""
    import training.reward

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "Sort: b a", "response": "a b"}\n{"prompt": "Sort: c b", "response": "b c"}\n')
    strict = {"parse_constant": lambda name: pytest.fail(f"{name} in the output")}
    real = training.reward.score_responses

    def nan_for_the_second(model, template, messages, answers, *args):
        rewards, cut = real(model, template, messages, answers, *args)
        return ([float("nan")] * len(rewards) if "c b" in messages[0]["content"] else rewards), cut

    monkeypatch.setattr(training.reward, "score_responses", nan_for_the_second)
    capsys.readouterr()
    assert main(["reward", "score", "--model", str(rewards[1.0][0]), "--input", str(rows)]) == 0
    captured = capsys.readouterr()
    first, second = (json.loads(x, **strict) for x in captured.out.splitlines())
    assert isinstance(first["response_reward"], float) and "non-finite reward (nan)" in second["error"]
    monkeypatch.undo()
    broken = tmp_path / "broken"
    reward = copy.deepcopy(rewards[1.0][1])
    with torch.no_grad():
        reward.value.weight.fill_(float("nan"))
    save_reward_model(str(broken), reward.state_dict(), reward.cfg)
    complete_model_dir(str(rewards[1.0][0]), str(broken))
    assert main(["reward", "score", "--model", str(broken), "--input", str(rows)]) == 2  # nothing scored
    captured = capsys.readouterr()
    assert all("non-finite" in json.loads(x, **strict)["error"] for x in captured.out.splitlines())
    assert "none of the 2 rows" in captured.err and "non-finite reward" in captured.err


@pytest.mark.parametrize("name, text, says", [
    ("llmpipe_tokenizer.json", '{"x":', " is not a usable tokenizer .JSONDecodeError"),
    ("llmpipe_tokenizer.json", "{}", " is not a usable tokenizer .KeyError: 'merges'"),
    ("llmpipe_tokenizer.json", '{"merges": [[1, 999]], "pattern": "x", "specials": []}', "earlier ids"),
    ("model_config.json", {"d_model": 64.0}, "d_model must be a whole number >= 1 .got 64.0"),
    ("model_config.json", {"n_layers": "2"}, "n_layers must be a whole number >= 1 .got '2'"),
    ("model_config.json", {"max_seq_len": 0}, "max_seq_len must be a whole number >= 1 .got 0"),
    ("model_config.json", {"norm_eps": "1e-5"}, "norm_eps must be a finite number > 0"),
    ("model_config.json", {"tie_embeddings": 1}, "tie_embeddings must be true or false")])
def test_a_damaged_model_folder_is_one_line_naming_the_file(models, rewards, tmp_path, capsys, name, text, says):
    """generate, reward score and the Python loaders (load_model, BPETokenizer.load) alike."""
    import shutil

    from llmdata.errors import LlmpipeError
    from training.export import load_model

    for source, command in ((models["chat"][0], ["generate", "--prompt", "hi", "--max-new-tokens", "2"]),
                            (rewards[1.0][0], ["reward", "score", "--input", str(tmp_path / "rows.jsonl")])):
        folder = tmp_path / source.name
        shutil.copytree(source, folder)
        (tmp_path / "rows.jsonl").write_text('{"prompt": "hi", "response": "a"}\n')
        if isinstance(text, dict):
            text = json.dumps({**json.loads((folder / name).read_text()), **text})
        (folder / name).write_text(text)
        capsys.readouterr()
        assert main([*command, "--model", str(folder)]) == 2
        err = capsys.readouterr().err
        assert re.search(f"^llmpipe: error: {re.escape(str(folder / name))}.*{says}", err) and err.count("\n") == 1, err
    with pytest.raises(LlmpipeError, match=says):
        load_model(str(folder)) if name == "model_config.json" else BPETokenizer.load(str(folder))


def test_search_sizes_and_length_penalties_beyond_their_limits_are_one_line(models, rewards, capsys):
    """Each best-of sample and each beam is a row of one batch (an out-of-memory error at 10**6), and
    length ** length_penalty must stay a float32 number (64 ** 200 was an OverflowError)."""
    from training.options import MAX_BEAMS, MAX_BEST_OF

    folder, policy = models["random"]
    tok = BPETokenizer.load(str(folder))
    chat = ["generate", "--model", str(models["chat"][0]), "--chat", "--prompt", "Sort: b a"]
    for extra, says in ((["--num-beams", "100000"], f"num_beams must be from 1 to {MAX_BEAMS} .got 100000"),
                        (["--num-beams", "2", "--max-new-tokens", "64", "--length-penalty", "200"],
                         "length_penalty 200.0 with max_new_tokens 64: .length_penalty. must be at most 15.39"),
                        (["--num-beams", "2", "--max-new-tokens", "64", "--length-penalty", "-200"], "at most 15.39"),
                        (["--best-of", "1000000", "--reward-model", str(rewards[1.0][0]), "--temperature", "1"],
                         f"--best-of 1000000: at most {MAX_BEST_OF}")):
        capsys.readouterr()
        assert main([*chat, *extra]) == 2
        err = capsys.readouterr().err
        assert re.search(says, err) and err.count("\n") == 1, err
    with pytest.raises(ValueError, match=f"from 1 to {MAX_BEST_OF}"):
        best_of_n(policy, rewards[1.0][1], ChatTemplate(tok), "hi", MAX_BEST_OF + 1, SAMPLE)
    ids = tok.encode("Sort")
    best, score = beam_search(policy, ids, 2, 64, [], 15.3)  # the largest allowed at 64 new tokens
    assert len(best) == policy.cfg.max_seq_len - len(ids) and math.isfinite(score) and score < 0
    # a negative penalty scales the scores of this peaked model below the -1e9 that rules candidates
    # out: the placeholder hypothesis (one token, score -1e9) came back as the answer
    with pytest.raises(ValueError, match="length_penalty -5.0 scales the beams' scores past -1e.09"):
        beam_search(policy, ids, 2, 64, [], -5.0)


def test_a_temperature_too_small_to_divide_by_is_greedy(models):
    """1e-45 leaves float32 when it divides the logits (inf, or -inf for every token of a row with
    negative logits): softmax gave NaN and multinomial refused; the limit of sampling is greedy."""
    folder, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(folder)))
    for prompt in PROMPTS:
        greedy = chat_replies(policy, template, prompt, Sampling(max_new_tokens=MAX_NEW), 1)
        assert chat_replies(policy, template, prompt, Sampling(MAX_NEW, temperature=1e-45), 2) == greedy * 2
    logits = torch.tensor([[-3.0, -1.0, -2.0], [2.0, 5.0, float("-inf")]])
    assert sample_next(logits, 1e-45, None, None).tolist() == [1, 1]


def test_best_of_n_with_a_reward_model_that_gives_nan_is_one_line(models, rewards):
    """A reward model whose weights went NaN (a diverged reward run): comparing NaN rewards would
    silently pick the first sample as "the best"; it is a one-line TrainingInputError instead."""
    from training.stage import TrainingInputError

    _, policy = models["chat"]
    template = ChatTemplate(BPETokenizer.load(str(models["chat"][0])))
    broken = copy.deepcopy(rewards[1.0][1])
    with torch.no_grad():
        broken.value.weight.fill_(float("nan"))
    with pytest.raises(TrainingInputError, match="non-finite reward") as err:
        best_of_n(policy, broken, template, "Sort: b a", 3, SAMPLE, torch.Generator().manual_seed(3))
    assert "\n" not in str(err.value)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(st.text(max_size=12), max_size=5))
def test_greedy_replies_in_batches_are_each_prompts_own_reply(models, tok_dir, monkeypatch, extra):
    """Held-out exact match answers the prompts of one length together (two per call here, so the
    chunks are exercised): each answer is the one `chat_reply` gives the prompt alone, for the
    trained chat model (which stops) and the random one (which runs to max_new_tokens), with
    prompts of equal and different lengths and any Unicode."""
    monkeypatch.setattr("training.generate.GREEDY_BATCH", 2)
    template = ChatTemplate(BPETokenizer.load(str(tok_dir)))
    prompts = [[{"role": "user", "content": q}] for q, _ in QA] + [[{"role": "user", "content": p}] for p in PROMPTS + extra]
    for name in ("chat", "random"):
        model = models[name][1]
        with torch.no_grad():
            alone = [chat_reply(model, template, p, Sampling(MAX_NEW)) for p in prompts]
        assert greedy_chat_replies(model, template, prompts, MAX_NEW) == alone
