"""The stage-independent core of online RL (training/rl.py, training/rewards.py): sampling groups,
reward sources that fail per sample, group advantages (GRPO, RLOO), per-token log-probs and the
GRPO loss, each against a hand computation or the existing one-at-a-time code."""
import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdata.bpe import PATTERNS, learn_merges
from llmdata.chat import ChatTemplate
from llmdata.tokenizer_io import BPETokenizer
from training.dpo import sequence_logps
from training.generate import Sampling, chat_reply
from training.model import ModelConfig, Transformer
from training.reward import RewardModel, score
from training.rewards import (LengthFormatPenalty, RewardInput, RewardModelScorer, RewardSource, RewardSourceFailed,
                              exact_match_reward, require_scored, reward_hacking_rate, score_completions)
from training.rl import (Completion, KLController, completion_stats, group_advantages, grpo_loss, label_logps,
                         pad_completions, policy_kl, position_kl, reward_inputs, sample_groups, tempered_logits,
                         token_logps)


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    text = "What is 3 + 4? 7 Repeat: file list name Reverse the words: path type data " * 20
    counts = {(" " + w).encode(): 5 for w in text.split()}
    return BPETokenizer(learn_merges(counts, 300).merges, PATTERNS["gpt4"])


def small_model(**kw) -> Transformer:
    torch.manual_seed(0)
    shape = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=64, ffn_multiple_of=16)
    return Transformer(ModelConfig(**{**shape, **kw}))


PROMPTS = [[{"role": "user", "content": "What is 3 + 4?"}], [{"role": "user", "content": "Reverse the words: path type"}]]
ANSWERS = ["7", "type path"]


def teach(tok, conversations: list[tuple[list, str]], steps: int) -> Transformer:
    """A tiny model trained (SFT, full batch, AdamW) on (prompt, answer) conversations."""
    template = ChatTemplate(tok)
    model = small_model(vocab_size=tok.vocab_size)
    seqs = [template.encode(p + [{"role": "assistant", "content": a}]) for p, a in conversations]
    width = max(len(ids) for ids, _ in seqs) - 1
    inputs = torch.full((len(seqs), width), 0, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (ids, mask) in enumerate(seqs):
        inputs[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        labels[i, : len(ids) - 1] = torch.tensor([t if m else -100 for t, m in zip(ids[1:], mask[1:])])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(inputs, labels=labels)["loss"].backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def taught(tok) -> Transformer:
    """A tiny model that answers PROMPTS with ANSWERS and stops."""
    return teach(tok, list(zip(PROMPTS, ANSWERS)), steps=60)


# ---- the GRPO loss ---------------------------------------------------------------------------------

def test_grpo_loss_equals_a_hand_computation():
    """Two completions (A = +1 and -0.5), three token slots, the last slot of the first masked:
    one token clipped above (ratio 1.5, A > 0), one clipped below (ratio 0.5, A < 0), one with a
    large ratio and A < 0 (not clipped: the unclipped term is the smaller), and k3 KL."""
    eps, beta = 0.2, 0.1
    logp = [[-1.0, -2.0, -0.3], [-0.5, -1.5, -2.5]]
    old = [[-1.0, -2.0 - math.log(1.5), -9.0], [-0.5 + math.log(2.0), -1.5 - math.log(1.5), -2.6]]
    ref = [[-1.2, -1.9, -0.1], [-0.4, -1.5, -2.0]]
    adv = [1.0, -0.5]
    mask = [[1, 1, 0], [1, 1, 1]]
    total = kl_total = 0.0
    clipped = 0
    for i in range(2):
        for t in range(3):
            if not mask[i][t]:
                continue
            ratio = math.exp(logp[i][t] - old[i][t])
            clip = min(max(ratio, 1 - eps), 1 + eps)
            surrogate = min(ratio * adv[i], clip * adv[i])
            d = ref[i][t] - logp[i][t]
            kl = math.exp(d) - d - 1
            total += -surrogate + beta * kl
            kl_total += kl
            clipped += (ratio > 1 + eps and adv[i] > 0) or (ratio < 1 - eps and adv[i] < 0)
    assert clipped == 2  # (0, 1): ratio 1.5, A > 0; (1, 0): ratio 0.5, A < 0. (1, 1): ratio 1.5, A < 0 is not
    logps = torch.tensor(logp, dtype=torch.float64, requires_grad=True)
    out = grpo_loss(logps, torch.tensor(old, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64),
                    torch.tensor(adv), torch.tensor(mask), clip_eps=eps, kl_coef=beta)
    assert float(out.loss_sum) == pytest.approx(total, rel=1e-12)
    assert int(out.count) == 5 and int(out.clipped) == 2
    assert float(out.kl_sum) == pytest.approx(kl_total, rel=1e-12)
    assert out.kl_mean == pytest.approx(kl_total / 5) and out.clip_fraction == pytest.approx(2 / 5)
    # the gradient: clipped tokens get only the KL term's; unclipped -A·ratio + beta·(1 - exp(ref - logp))
    out.loss_sum.backward()
    for i in range(2):
        for t in range(3):
            ratio = math.exp(logp[i][t] - old[i][t])
            is_clipped = (i, t) in ((0, 1), (1, 0))
            expected = 0.0 if not mask[i][t] else (
                (0.0 if is_clipped else -adv[i] * ratio) + beta * (1 - math.exp(ref[i][t] - logp[i][t])))
            assert float(logps.grad[i, t]) == pytest.approx(expected, abs=1e-12), (i, t)


def test_grpo_loss_at_the_sampling_policy_is_the_policy_gradient():
    """old = logp.detach(), ref = logp, no KL: the loss is -Σ A (value), its gradient -A per token;
    nothing is clipped and the KL is 0. Split into two micro batches, sums and counts add up."""
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]], requires_grad=True)
    adv = torch.tensor([0.7, -1.3])
    mask = torch.tensor([[True, True], [True, False]])
    out = grpo_loss(logps, logps.detach(), logps.detach(), adv, mask, clip_eps=0.2, kl_coef=0.5)
    assert float(out.loss_sum) == pytest.approx(-(0.7 * 2 - 1.3))
    assert float(out.kl_sum) == 0.0 and int(out.clipped) == 0
    out.loss_sum.backward()
    assert logps.grad.flatten().tolist() == pytest.approx([-0.7, -0.7, 1.3, 0.0])
    halves = [grpo_loss(logps[i : i + 1].detach(), logps[i : i + 1].detach(), None, adv[i : i + 1], mask[i : i + 1])
              for i in range(2)]
    assert sum(float(h.loss_sum) for h in halves) == pytest.approx(float(out.loss_sum))
    assert sum(int(h.count) for h in halves) == int(out.count) == 3


def test_grpo_loss_rejects_bad_settings_in_one_line():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="kl_coef"):
        grpo_loss(x, x, x, torch.zeros(2), x, clip_eps=0.2, kl_coef=-0.1)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(x, x, None, torch.zeros(2), x, kl_coef=0.1)
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(x, x, x, torch.zeros(3), x)


# ---- group advantages ------------------------------------------------------------------------------

def test_group_advantages_grpo_and_rloo_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0],       # mean 0.5, unbiased std sqrt(1/3)
                            [2.0, 2.0, 2.0, 2.0],       # no variance: no signal
                            [0.0, 1.0, 2.0, math.nan],  # NaN left out: mean 1, std 1 over the other 3
                            [math.nan, 3.0, math.nan, math.nan]])  # one finite reward: no signal
    eps = 1e-4
    std = math.sqrt(((0.5 ** 2) * 4) / 3)
    grpo = group_advantages(rewards, scale="std", eps=eps)
    expected = [[0.5 / (std + eps), -0.5 / (std + eps), -0.5 / (std + eps), 0.5 / (std + eps)],
                [0.0] * 4,
                [-1 / (1 + eps), 0.0, 1 / (1 + eps), 0.0],
                [0.0] * 4]
    for row, exp in zip(grpo.advantages.tolist(), expected):
        assert row == pytest.approx(exp, rel=1e-6)
    assert grpo.valid.tolist()[2] == [True, True, True, False] and grpo.valid.tolist()[3] == [False, True, False, False]
    assert grpo.zero_variance.tolist() == [False, True, False, True] and grpo.zero_variance_fraction == 0.5
    # no scaling: reward minus group mean
    plain = group_advantages(rewards, scale="none")
    assert plain.advantages.tolist()[0] == pytest.approx([0.5, -0.5, -0.5, 0.5])
    assert plain.advantages.tolist()[2] == pytest.approx([-1.0, 0.0, 1.0, 0.0])
    # RLOO: reward minus the mean of the others
    rloo = group_advantages(rewards, scale="none", baseline="leave_one_out")
    assert rloo.advantages.tolist()[0] == pytest.approx([1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3])
    assert rloo.advantages.tolist()[2] == pytest.approx([0 - 1.5, 1 - 1.0, 2 - 0.5, 0.0])
    assert rloo.advantages.tolist()[1] == [0.0] * 4 and rloo.zero_variance.tolist() == grpo.zero_variance.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(-1e3, 1e3), st.just(math.nan)), min_size=2, max_size=6), min_size=1, max_size=5)
       .filter(lambda rows: len({len(r) for r in rows}) == 1))
def test_group_advantages_sum_to_zero_and_skip_nan(rows):
    """Any rewards: finite advantages, 0 for NaN rewards, summing to 0 over each group's valid ones."""
    out = group_advantages(torch.tensor(rows, dtype=torch.float64), scale="std")
    assert torch.isfinite(out.advantages).all()
    for adv, valid, row in zip(out.advantages.tolist(), out.valid.tolist(), rows):
        assert [not math.isnan(r) for r in row] == valid
        assert all(a == 0.0 for a, v in zip(adv, valid) if not v)
        assert abs(sum(adv)) < 1e-3 * max(1.0, max(abs(a) for a in adv))


def test_group_advantages_need_a_group():
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_advantages(torch.zeros(3, 1))


# ---- reward sources --------------------------------------------------------------------------------

def items(texts, reference="7", finished=True):
    return [RewardInput(PROMPTS[0], reference, t, [1] * len(t), finished) for t in texts]


def test_a_failing_reward_source_gives_an_error_row_and_leaves_the_sample_out():
    def fragile(batch):
        out = []
        for it in batch:
            if "boom" in it.text:
                raise RuntimeError("the scorer broke\non two lines")
            out.append(float(len(it.text)))
        return out

    batch = items([" 7 ", "8", "boom", "7"]) + [RewardInput(PROMPTS[0], None, "7", [1], True)]
    scores = score_completions(batch, [RewardSource("checker", exact_match_reward, 1.0), RewardSource("fragile", fragile, 0.5),
                                       RewardSource("nan", lambda b: [math.nan if it.text == "8" else 0.0 for it in b], 1.0)])
    assert scores.errors == [(1, "nan", "non-finite reward nan"), (2, "fragile", "RuntimeError: the scorer broke"),
                             (4, "checker", "ValueError: the prompt has no reference answer to check against")]
    checker, fragile_r, total = scores.per_source["checker"], scores.per_source["fragile"], scores.total
    assert checker[:4].tolist() == [1.0, 0.0, 0.0, 1.0] and math.isnan(checker[4])
    assert fragile_r.tolist()[:2] == [3.0, 1.0] and math.isnan(fragile_r[2])
    assert total[0] == pytest.approx(1.0 + 0.5 * 3) and total[3] == pytest.approx(1.5)
    assert [math.isnan(x) for x in total.tolist()] == [False, True, True, False, True]
    assert scores.means()["checker"] == pytest.approx(0.5) and scores.means()["total"] == pytest.approx(2.0)
    # the group's advantage is over the rest; the failed samples get none and no loss
    adv = group_advantages(total.view(1, 5), scale="none")
    assert adv.advantages.tolist()[0] == pytest.approx([0.5, 0.0, 0.0, -0.5, 0.0])  # 2.5 and 1.5 about 2.0
    assert adv.valid.tolist()[0] == [True, False, False, True, False]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20), st.booleans(), st.one_of(st.none(), st.text(max_size=5))), min_size=1, max_size=8))
def test_any_completions_and_failures_give_error_rows_exactly_where_a_source_fails(rows):
    """Any Unicode text, any pattern of failures (raised, or no reference for the checker): never an
    exception, an error row for each failing (completion, source) and NaN exactly there."""
    def flaky(batch):
        return [float(len(it.text)) if not it.completion_ids[0] else 1 / 0 for it in batch]

    batch = [RewardInput(PROMPTS[0], ref, text, [int(fails)], True) for text, fails, ref in rows]
    scores = score_completions(batch, [RewardSource("flaky", flaky), RewardSource("checker", exact_match_reward, 2.0)])
    expected = sorted([(i, "flaky", "ZeroDivisionError: division by zero") for i, (_, fails, _) in enumerate(rows) if fails]
                      + [(i, "checker", "ValueError: the prompt has no reference answer to check against")
                         for i, (_, _, ref) in enumerate(rows) if ref is None])
    assert scores.errors == expected
    bad = {sample for sample, _, _ in expected}
    assert [math.isnan(x) for x in scores.total.tolist()] == [i in bad for i in range(len(rows))]
    for i, (text, fails, ref) in enumerate(rows):
        if i not in bad:
            assert scores.total[i] == pytest.approx(len(text) + 2.0 * (text.strip() == ref.strip()))


def test_a_source_that_fails_on_every_completion_stops_the_run_in_one_line():
    """One failing completion is an error row; all of them is a broken source (a GPU run trained 60
    steps on nothing and ended "complete" when the reward model's inputs went to the wrong device)."""
    batch = items(["7", "8", "boom"])
    some = score_completions(batch, [RewardSource("fragile", lambda b: [1 / 0 if it.text == "boom" else 1.0 for it in b])])
    require_scored(some, "step 1")  # two of three scored: the run goes on
    broken = score_completions(batch, [RewardSource("checker", exact_match_reward),
                                       RewardSource("reward_model", lambda b: [1 / 0 for _ in b])])
    with pytest.raises(RewardSourceFailed) as err:
        require_scored(broken, "the rollout of step 3")
    assert str(err.value) == ("rl: the reward source 'reward_model' failed on all 3 completions of the rollout of step 3; "
                              "the first: ZeroDivisionError: division by zero")


def test_the_reward_model_scorer_sends_its_batches_where_the_model_is_when_called(tok):
    """The RL stage builds its sources before the engine moves the reward model to the GPU: the
    scorer must follow the model, not the device it was on when the scorer was made."""
    seen = []

    class Spy(torch.nn.Module):
        cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=8, n_layers=1, n_heads=1, n_kv_heads=1, max_seq_len=64)

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, ids, lengths):
            seen.append((ids.device, lengths.device))
            return torch.zeros(len(lengths))

    model = Spy()
    scorer = RewardModelScorer(model, ChatTemplate(tok))
    model.to("meta")  # another device than the one the scorer was made on (the CPU)
    assert scorer(items(["7", "8"])) == [0.0, 0.0]
    assert seen == [(torch.device("meta"), torch.device("meta"))]


def test_length_and_format_penalty():
    pen = LengthFormatPenalty(truncated=1.0, per_token=0.1, free_tokens=2)
    got = pen([RewardInput(PROMPTS[0], None, "abc", [5, 6, 7], True), RewardInput(PROMPTS[0], None, "a", [5], False)])
    assert got == pytest.approx([-0.1, -1.0])


def test_reward_model_scoring_in_batches_equals_one_at_a_time(tok):
    template = ChatTemplate(tok)
    model = RewardModel(small_model(vocab_size=tok.vocab_size)).eval()
    texts = ["7", "path type data file list name", "", "What is 3 + 4? 7 7 7 7 7 7 7 7"]
    batch = [RewardInput(p, None, t, [], True) for p in PROMPTS for t in texts]
    for max_len in (4096, 12):  # 12: the longer ones are cut, as score() cuts them, and counted
        scored = [score(model, template, it.messages, it.text, max_len=max_len) for it in batch]
        one_by_one = [r for r, _ in scored]
        for size in (1, 3, 64):
            scorer = RewardModelScorer(model, template, batch_size=size, max_len=max_len)
            assert scorer(batch) == pytest.approx(one_by_one, abs=1e-5)
            assert scorer.cut == sum(cut for _, cut in scored)
        assert (sum(cut for _, cut in scored) > 0) == (max_len == 12)
    assert len(set(round(x, 5) for x in one_by_one)) > 1  # the texts do score differently


def test_reward_hacking_rate_by_hand():
    rm = torch.tensor([[0.9, 0.1, 0.5], [1.0, 2.0, math.nan], [0.3, 0.3, 0.0]])
    ok = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    # group 0: right 0.9 vs wrong 0.1, 0.5 -> 0 hacked; group 1: 1.0 vs 2.0 -> 1 (NaN left out);
    # group 2: right 0.3, 0.0 vs wrong 0.3 -> tie 0.5 and 1
    assert reward_hacking_rate(rm, ok) == (pytest.approx(2.5 / 5), 5)


# ---- sampling and per-token log-probs --------------------------------------------------------------

def test_sample_groups_gives_g_completions_per_prompt_deterministic_for_a_seed(tok, taught):
    template = ChatTemplate(tok)
    hot = Sampling(max_new_tokens=8, temperature=1.5, top_k=50)
    runs = [sample_groups(taught, template, PROMPTS, 5, hot, torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]
    out = runs[0]
    assert [c.prompt for c in out] == [0] * 5 + [1] * 5
    for c in out:
        assert c.prompt_ids == template.prompt(PROMPTS[c.prompt])
        stops = (template.end_id, template.eot_id)
        assert c.finished == any(t in stops for t in c.completion_ids)
        assert c.finished == (c.completion_ids[-1] in stops) and sum(t in stops for t in c.completion_ids) <= 1
        assert len(c.completion_ids) <= 8
        assert c.text == tok.decode(c.completion_ids[:-1] if c.finished else c.completion_ids)
    # greedy: every completion of a group is the taught answer, ended at the end of turn, as chat_reply gives it
    greedy = sample_groups(taught, template, PROMPTS, 3, Sampling(max_new_tokens=8))
    for c in greedy:
        assert c.finished and c.text == ANSWERS[c.prompt] == chat_reply(taught, template, PROMPTS[c.prompt], Sampling(8))
    # too few new tokens: cut, not finished
    cut = sample_groups(taught, template, PROMPTS[1:], 2, Sampling(max_new_tokens=1))
    assert [(c.finished, len(c.completion_ids)) for c in cut] == [(False, 1)] * 2
    answer_tokens = [len(tok.encode(a)) + 1 for a in ANSWERS]  # with the end-of-turn token
    assert completion_stats(greedy + cut) == {"completion_tokens": pytest.approx((3 * sum(answer_tokens) + 2) / 8),
                                              "truncated_fraction": 2 / 8}
    inputs = reward_inputs(greedy, PROMPTS, ["7", None])
    assert [(i.messages, i.reference, i.text, i.finished) for i in inputs] == [(PROMPTS[0], "7", "7", True)] * 3 + [
        (PROMPTS[1], None, "type path", True)] * 3
    assert taught.training is False
    taught.train()
    sample_groups(taught, template, PROMPTS[:1], 2, Sampling(max_new_tokens=1))
    assert taught.training is True  # the mode is restored
    taught.eval()


def test_groups_sampled_together_are_the_groups_each_prompt_gets_alone(tok, taught):
    """RL samples a step's prompts in one call per prompt length, each group from its prompt's own
    generator: the completions are the ones each prompt gets in a call of its own."""
    template = ChatTemplate(tok)
    hot = Sampling(max_new_tokens=8, temperature=1.5, top_k=50)
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], [{"role": "user", "content": "Repeat: file list"}]]
    alone = [c for b, p in enumerate(prompts)
             for c in sample_groups(taught, template, [p], 3, hot, torch.Generator().manual_seed(10 + b))]
    together = sample_groups(taught, template, prompts, 3, hot, [torch.Generator().manual_seed(10 + b) for b in range(4)])
    assert [c.prompt for c in together] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert [(c.completion_ids, c.text, c.finished) for c in together] == [(c.completion_ids, c.text, c.finished) for c in alone]
    assert len({tuple(c.completion_ids) for c in together}) > 4  # really sampled, not one answer
    with pytest.raises(ValueError, match="one per prompt"):
        sample_groups(taught, template, prompts, 3, hot, [torch.Generator()])


def test_a_completion_ends_at_endoftext_as_exact_match_reads_it(tok, monkeypatch):
    """A sample "7<|endoftext|> file<|end|>" is the answer "7" to held-out exact match (generate's
    stops are the HF export's: <|end|> and <|endoftext|>); RL's checker and reward model see the
    same answer, and the loss trains the ids up to that stop."""
    template = ChatTemplate(tok)
    model = small_model(vocab_size=tok.vocab_size).eval()
    written = tok.encode("7") + [template.eot_id] + tok.encode(" file") + [template.end_id]

    def scripted(self, prompt, max_new_tokens, **kw):
        return torch.cat([prompt, torch.tensor([written[:max_new_tokens]] * prompt.size(0))], 1)

    monkeypatch.setattr(Transformer, "generate", scripted)
    (c,) = sample_groups(model, template, PROMPTS[:1], 1, Sampling(8, temperature=1.0))
    assert (c.text, c.completion_ids, c.finished) == ("7", tok.encode("7") + [template.eot_id], True)
    assert exact_match_reward(reward_inputs([c], PROMPTS[:1], ["7"])) == [1.0]
    assert chat_reply(model, template, PROMPTS[0], Sampling(8)) == "7"


def test_token_logps_are_the_completion_tokens_log_probs(tok):
    torch.manual_seed(0)
    model = small_model(vocab_size=tok.vocab_size).eval()
    template = ChatTemplate(tok)
    comps = [Completion(0, template.prompt(PROMPTS[0]), tok.encode("7") + [template.end_id], "7", True),
             Completion(1, template.prompt(PROMPTS[1]), tok.encode("type path data"), "type path data", False)]
    batch = pad_completions(comps, pad_id=tok.special_ids["<|pad|>"])
    for i, c in enumerate(comps):
        assert [t for t in batch["labels"][i].tolist() if t != -100] == c.completion_ids
    with torch.no_grad():
        logps = token_logps(model, batch["input_ids"], batch["labels"])
        hot = token_logps(model, batch["input_ids"], batch["labels"], temperature=2.0)
        for i, c in enumerate(comps):
            ids = c.prompt_ids + c.completion_ids
            logits = model(torch.tensor([ids]))["logits"][0]
            p = len(c.prompt_ids)
            by_hand = [float(logits[t - 1].log_softmax(-1)[ids[t]]) for t in range(p, len(ids))]
            got = [x for x, lab in zip(logps[i].tolist(), batch["labels"][i].tolist()) if lab != -100]
            assert got == pytest.approx(by_hand, abs=1e-5)
            hot_by_hand = [float((logits[t - 1] / 2.0).log_softmax(-1)[ids[t]]) for t in range(p, len(ids))]
            assert [x for x, lab in zip(hot[i].tolist(), batch["labels"][i].tolist()) if lab != -100] == pytest.approx(
                hot_by_hand, abs=1e-5)
        assert (logps[batch["labels"] == -100] == 0).all()
        assert logps.sum(-1).tolist() == pytest.approx(sequence_logps(model, batch["input_ids"], batch["labels"]).tolist(), abs=1e-4)
    dropped = pad_completions(comps, pad_id=0, keep=[True, False])
    assert (dropped["labels"][1] == -100).all() and torch.equal(dropped["labels"][0], batch["labels"][0])


def test_logits_at_the_labelled_positions_are_the_full_logits_there(tok):
    """The RL loss's logits only at completion tokens ([K, V]) give the log-probs, gradients and
    exact KL of the full [N, T, V] logits, at a fraction of the head's cost."""
    template = ChatTemplate(tok)
    comps = [Completion(0, template.prompt(PROMPTS[0]), tok.encode("7") + [template.end_id], "7", True),
             Completion(1, template.prompt(PROMPTS[1]), tok.encode("type path data"), "type path data", False)]
    batch = pad_completions(comps, pad_id=tok.special_ids["<|pad|>"])
    ids, labels = batch["input_ids"], batch["labels"]
    mask = labels != -100
    model, ref = small_model(vocab_size=tok.vocab_size), small_model(vocab_size=tok.vocab_size, init_std=0.05)
    grads = []
    for at in (None, mask):
        model.zero_grad()
        logits = tempered_logits(model, ids, 0.7, at=at)
        assert logits.shape == ((int(mask.sum()), tok.vocab_size) if at is not None else (*ids.shape, tok.vocab_size))
        logps = label_logps(logits, labels)
        ref_logits = tempered_logits(ref, ids, 0.7, at=at)
        kl = position_kl(logits.detach(), ref_logits, mask if at is None else mask[mask])
        logps.sum().backward()
        grads.append((logps.detach(), float(kl.sum()), [p.grad.clone() for p in model.parameters()]))
    (full, full_kl, full_grads), (packed, packed_kl, packed_grads) = grads
    assert torch.allclose(full, packed, atol=1e-6) and (packed[~mask] == 0).all()
    assert packed_kl == pytest.approx(full_kl, rel=1e-5) and packed_kl > 0
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full_grads, packed_grads))
    with pytest.raises(ValueError, match="logits_at"):
        model(ids, labels=labels, logits_at=mask)


def test_position_kl_is_the_next_token_distributions_kl():
    torch.manual_seed(0)
    logits, ref = torch.randn(3, 5, 11) * 2, torch.randn(3, 5, 11) * 2
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    got = position_kl(logits, ref, mask)
    reference = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=logits),
                                                  torch.distributions.Categorical(logits=ref))
    assert torch.allclose(got[mask], reference[mask], atol=1e-5)
    assert (got[~mask] == 0).all() and (got[mask] > 0).all()
    assert position_kl(logits, logits.clone(), mask).abs().max() < 1e-6
    with pytest.raises(ValueError, match="shape"):
        position_kl(logits, ref[:, :4], mask)


def test_position_kl_and_k3_estimate_the_same_kl():
    # k3 on sampled tokens (grpo_loss's kl_sum) is unbiased for the KL that position_kl gives exactly
    torch.manual_seed(1)
    logits, ref = torch.randn(1, 1, 7), torch.randn(1, 1, 7)
    exact = float(position_kl(logits, ref, torch.ones(1, 1, dtype=torch.bool)))
    n = 200_000
    tokens = torch.distributions.Categorical(logits=logits[0, 0]).sample((n,))
    logps = logits[0, 0].log_softmax(-1)[tokens].view(n, 1)
    ref_logps = ref[0, 0].log_softmax(-1)[tokens].view(n, 1)
    out = grpo_loss(logps, logps, ref_logps, torch.zeros(n), torch.ones(n, 1), 0.2, 0.0)
    assert out.kl_mean == pytest.approx(exact, rel=0.02)


def test_policy_kl_is_the_mean_next_token_kl_over_the_policys_samples(tok):
    template = ChatTemplate(tok)
    reference = small_model(vocab_size=tok.vocab_size).eval()
    policy = copy.deepcopy(reference)
    with torch.no_grad():
        policy.embed.weight.add_(0.3 * torch.randn_like(policy.embed.weight))
    sampling = Sampling(max_new_tokens=4, temperature=0.7)
    kl, tokens = policy_kl(policy, reference, template, PROMPTS, 3, sampling, tok.special_ids["<|pad|>"],
                           torch.Generator().manual_seed(5))
    # slow path: the same samples one completion at a time, the KL of each next-token distribution
    gen = torch.Generator().manual_seed(5)  # one generator for both groups, as policy_kl draws them
    comps = [c for p in PROMPTS for c in sample_groups(policy, template, [p], 3, sampling, gen)]
    by_hand = []
    with torch.no_grad():
        for c in comps:
            ids = torch.tensor([c.prompt_ids + c.completion_ids])
            p_logits, r_logits = policy(ids)["logits"][0] / 0.7, reference(ids)["logits"][0] / 0.7
            for t in range(len(c.prompt_ids) - 1, len(c.prompt_ids) + len(c.completion_ids) - 1):
                by_hand.append(float(torch.distributions.kl_divergence(
                    torch.distributions.Categorical(logits=p_logits[t]), torch.distributions.Categorical(logits=r_logits[t]))))
    assert tokens == len(by_hand) and kl == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-4)
    assert kl > 0
    same, _ = policy_kl(reference, copy.deepcopy(reference), template, PROMPTS, 2, sampling, 0)
    assert same == pytest.approx(0.0, abs=1e-6)


def test_grpo_steps_with_the_checker_raise_the_reward(tok):
    """The pieces together, sign included: a tiny model taught to answer "7" and "8" equally often
    learns, from a few GRPO steps with the exact-match checker (group size 8, KL to itself before
    RL), to answer "7"."""
    template = ChatTemplate(tok)
    model = teach(tok, [(PROMPTS[0], "7"), (PROMPTS[0], "8")], steps=40)
    ref = copy.deepcopy(model)
    prompts, refs = PROMPTS[:1] * 2, ["7", "7"]
    sampling = Sampling(max_new_tokens=3, temperature=1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    means = []
    for _ in range(20):
        comps = sample_groups(model, template, prompts, 8, sampling, gen)
        scored = score_completions(reward_inputs(comps, prompts, refs), [RewardSource("checker", exact_match_reward)])
        means.append(scored.means()["checker"])
        adv = group_advantages(scored.total.view(2, 8))
        batch = pad_completions(comps, pad_id=0, keep=adv.valid.flatten().tolist())
        mask = batch["labels"] != -100
        with torch.no_grad():
            ref_logps = token_logps(ref, batch["input_ids"], batch["labels"])
        model.train()
        logps = token_logps(model, batch["input_ids"], batch["labels"])
        out = grpo_loss(logps, logps.detach(), ref_logps, adv.advantages.flatten(), mask, 0.2, 0.01)
        opt.zero_grad()
        (out.loss_sum / out.count).backward()
        opt.step()
    assert 0.2 < sum(means[:3]) / 3 < 0.8 and sum(means[-3:]) / 3 > 0.9, means


def test_adaptive_kl_controller_by_hand():
    """Ziegler et al. 2019, section 2.2: e = clip(KL / target - 1, -0.2, 0.2), beta *= 1 + e / horizon."""
    c = KLController(0.04, "adaptive", target=0.1, horizon=10)
    assert c.update(0.15) == pytest.approx(0.04 * (1 + 0.2 / 10))  # KL 50% over: e = 0.5, clipped to 0.2
    assert c.value == pytest.approx(0.04 * 1.02)
    assert c.update(0.09) == pytest.approx(0.04 * 1.02 * (1 - 0.1 / 10))  # 10% under: e = -0.1
    assert c.update(0.0) == pytest.approx(0.04 * 1.02 * 0.99 * 0.98)  # no KL: e = -1 clipped to -0.2
    before = c.value
    assert c.update(float("nan")) == before and c.update(None) == before  # a step without tokens leaves beta
    assert c.update(0.1) == before  # at the target beta stays
    # TRL's AdaptiveKLController (horizon in samples, n_steps = the step's batch) with horizon 10000, 256 per step
    trl = 0.2 * (1 + min(max(0.3 / 0.1 - 1, -0.2), 0.2) * 256 / 10000)
    assert KLController(0.2, "adaptive", 0.1, 10000 / 256).update(0.3) == pytest.approx(trl)
    fixed = KLController(0.04, "fixed", 0.1)
    assert fixed.update(5.0) == 0.04 and fixed.update(0.0) == 0.04
    resumed = KLController(0.04, "adaptive", 0.1)
    resumed.load_state_dict(c.state_dict())
    assert resumed.value == c.value and resumed.update(0.2) == c.update(0.2)


@pytest.mark.parametrize("args, says", [
    ((0.04, "pid", 0.1), "kl_control must be fixed or adaptive"),
    ((-0.1, "fixed"), "must be >= 0"),
    ((0.0, "adaptive", 0.1), "needs kl_coef > 0"),
    ((0.04, "adaptive", None), "needs kl_target > 0"),
    ((0.04, "adaptive", 0.1, 0.0), "kl_horizon must be > 0"),
])
def test_kl_controller_rejects_bad_settings_in_one_line(args, says):
    with pytest.raises(ValueError, match=says) as err:
        KLController(*args)
    assert "\n" not in str(err.value)
