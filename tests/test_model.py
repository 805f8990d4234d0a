"""The decoder model: shapes and counts, positions, attention variants, packing, generation."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
import torch

from training.model import (ModelConfig, Transformer, alibi_slopes, apply_rope, categorical_draw, rope_tables, sample_next,
                            token_loss)


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=97, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4, max_seq_len=64, ffn_multiple_of=16)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("kw", [{}, {"n_kv_heads": 1}, {"n_kv_heads": 2, "tie_embeddings": False}])
def test_parameter_count_is_computed_from_shapes(kw):
    cfg = tiny(**kw)
    model = Transformer(cfg)
    assert cfg.n_params() == sum(p.numel() for p in model.parameters())
    assert cfg.flops_per_token(64) > 6 * cfg.n_params(embeddings=False)


def test_config_is_validated():
    with pytest.raises(ValueError, match="n_kv_heads"):
        tiny(n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="n_heads"):
        tiny(d_model=30)
    for name, typo in (("norm", "weird"), ("position", "RoPE"), ("attention", "flash")):
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            tiny(**{name: typo})


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    cos, sin = rope_tables(16, 128, 10000.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        return (apply_rope(q, cos, sin, torch.tensor([[m]])) * apply_rope(k, cos, sin, torch.tensor([[n]]))).sum()

    assert torch.allclose(score(10, 3), score(57, 50), atol=1e-5)
    assert not torch.allclose(score(10, 3), score(10, 4), atol=1e-3)
    assert torch.allclose(apply_rope(q, cos, sin, torch.tensor([[0]])), q)


def test_alibi_slopes():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert len(alibi_slopes(12)) == 12 and bool((alibi_slopes(12) > 0).all())


def test_grouped_query_attention_equals_mha_with_repeated_kv():
    torch.manual_seed(0)
    gqa = Transformer(tiny(n_kv_heads=2))
    mha = Transformer(tiny(n_kv_heads=4))
    state = gqa.state_dict()
    hd = gqa.cfg.head_dim
    for name, tensor in list(state.items()):
        if name.endswith("attn.wk.weight") or name.endswith("attn.wv.weight"):
            state[name] = tensor.view(2, hd, -1).repeat_interleave(2, dim=0).reshape(4 * hd, -1)
    mha.load_state_dict(state)
    ids = torch.randint(0, 97, (2, 20))
    assert torch.allclose(gqa(ids)["logits"], mha(ids)["logits"], atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"position": "alibi"}, {"n_kv_heads": 1}, {"sliding_window": 5}, {"norm": "post"}])
def test_kv_cache_generation_equals_generation_without_cache(kw):
    torch.manual_seed(1)
    model = Transformer(tiny(**kw))
    prompt = torch.randint(0, 97, (2, 7))
    with_cache = model.generate(prompt, 12, use_cache=True)
    without = model.generate(prompt, 12, use_cache=False)
    assert torch.equal(with_cache, without) and with_cache.shape == (2, 19)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1 = model.generate(prompt, 8, temperature=0.9, top_k=20, top_p=0.9, generator=g1)
    s2 = model.generate(prompt, 8, temperature=0.9, top_k=20, top_p=0.9, use_cache=False, generator=g2)
    assert torch.equal(s1, s2)


def test_generation_stops_at_end_of_text():
    torch.manual_seed(2)
    model = Transformer(tiny())
    prompt = torch.randint(0, 97, (1, 4))
    eos = int(model.generate(prompt, 1)[0, -1])  # whatever greedy says first becomes "end of text"
    assert model.generate(prompt, 10, eos_id=eos).shape == (1, 5)


@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_packed_sequence_equals_documents_run_separately(position):
    torch.manual_seed(3)
    model = Transformer(tiny(position=position)).eval()
    a, b = torch.randint(0, 97, (1, 9)), torch.randint(0, 97, (1, 6))
    packed = torch.cat([a, b], dim=1)
    positions = torch.cat([torch.arange(9), torch.arange(6)])[None]
    docs = torch.tensor([[0] * 9 + [1] * 6])
    out = model(packed, position_ids=positions, doc_ids=docs)["logits"]
    assert torch.allclose(out[:, :9], model(a)["logits"], atol=1e-5)
    assert torch.allclose(out[:, 9:], model(b)["logits"], atol=1e-5)
    labels = torch.cat([a[:, 1:], torch.full((1, 1), -100), b[:, 1:], torch.full((1, 1), -100)], dim=1)
    packed_loss = model(packed, labels=labels, position_ids=positions, doc_ids=docs)["loss"]
    sep = [model(x, labels=torch.cat([x[:, 1:], torch.full((1, 1), -100)], dim=1))["loss"] for x in (a, b)]
    assert torch.allclose(packed_loss, (sep[0] * 8 + sep[1] * 5) / 13, atol=1e-5)


def test_sliding_window_limits_what_a_token_sees():
    torch.manual_seed(4)
    model = Transformer(tiny(n_layers=1, sliding_window=4)).eval()
    ids = torch.randint(0, 97, (1, 16))
    changed = ids.clone()
    changed[0, 0] = (ids[0, 0] + 1) % 97
    a, b = model(ids)["logits"], model(changed)["logits"]
    assert not torch.allclose(a[:, 3], b[:, 3])  # position 3 still sees position 0
    assert torch.allclose(a[:, 4:], b[:, 4:], atol=1e-6)  # later positions do not


@pytest.mark.parametrize("norm", ["pre", "post", "deepnorm"])
def test_loss_falls_when_training(norm):
    torch.manual_seed(5)
    model = Transformer(tiny(norm=norm))
    data = torch.arange(32).repeat(4, 2)[:, :48] % 97
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(data[:, :-1], labels=data[:, 1:])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0] and math.isfinite(losses[-1])


def test_sampling_filters():
    logits = torch.tensor([[0.1, 3.0, 0.2, 2.9]])
    assert int(sample_next(logits, 0.0, None, None)) == 1
    assert int(sample_next(logits, 1.0, 1, None)) == 1
    assert int(sample_next(logits, 1.0, None, 1e-6)) == 1
    g = torch.Generator().manual_seed(0)
    picks = {int(sample_next(logits, 1.0, 2, None, g)) for _ in range(50)}
    assert picks <= {1, 3} and len(picks) == 2


@pytest.mark.parametrize("name, size", [("125m", 125e6), ("350m", 350e6), ("1b", 1e9)])
def test_presets_are_the_size_their_names_say(name, size):
    from training.model import load_preset

    cfg = load_preset(name)
    assert 0.8 * size <= cfg.n_params() <= 1.25 * size, cfg.n_params()


def test_tiny_preset_builds_and_unknown_presets_are_refused():
    from training.model import load_preset

    cfg = load_preset("tiny", vocab_size=300)
    assert Transformer(cfg)(torch.randint(0, 300, (1, 8)))["logits"].shape == (1, 8, 300)
    with pytest.raises(ValueError, match="unknown model preset"):
        load_preset("huge")


def packed_batch(device="cpu"):
    """Two rows: three documents, then one; positions restart at each document."""
    ids = torch.randint(0, 97, (2, 40), device=device)
    docs = torch.tensor([[0] * 13 + [1] * 20 + [2] * 7, [0] * 40], device=device)
    starts = torch.tensor([[0] * 13 + [13] * 20 + [33] * 7, [0] * 40], device=device)
    return ids, torch.arange(40, device=device).expand(2, 40) - starts, docs


@pytest.mark.parametrize("window", [None, 5])
def test_flex_attention_path_equals_dense_mask_path(window, monkeypatch):
    """The GPU path for packed batches (FlexAttention with a block mask shared by the layers) gives
    the dense-mask SDPA path's logits; here eager and forward-only (no CPU backward in torch)."""
    import training.model as model_module

    torch.manual_seed(5)
    model = Transformer(tiny(d_model=64, n_kv_heads=2, sliding_window=window)).eval()
    ids, positions, docs = packed_batch()
    with torch.no_grad():
        dense = model(ids, position_ids=positions, doc_ids=docs)["logits"]
        monkeypatch.setattr(model_module, "use_flex", lambda *a: True)
        flex = model(ids, position_ids=positions, doc_ids=docs)["logits"]
    assert torch.allclose(flex, dense, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's compiled kernel needs a GPU")
@pytest.mark.parametrize("window", [None, 5])
def test_flex_attention_on_gpu_matches_dense_mask_with_gradients(window):
    torch.manual_seed(5)
    ids, positions, docs = packed_batch("cuda")
    results = []
    for attention in ("sdpa", "auto"):
        torch.manual_seed(6)
        model = Transformer(tiny(d_model=64, n_kv_heads=2, sliding_window=window, attention=attention)).cuda()
        out = model(ids, labels=ids, position_ids=positions, doc_ids=docs)
        out["loss"].backward()
        results.append((out["logits"].detach(), model.blocks[0].attn.wq.weight.grad.clone()))
    (dense_logits, dense_grad), (flex_logits, flex_grad) = results
    assert torch.allclose(flex_logits, dense_logits, atol=1e-4)
    assert torch.allclose(flex_grad, dense_grad, atol=1e-5, rtol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled loss is for GPUs")
def test_compiled_token_loss_equals_eager_on_gpu():
    import training.model as model_module

    torch.manual_seed(7)
    logits = torch.randn(3, 50, 1000, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 1000, (3, 50), device="cuda")
    labels[:, :10] = -100
    eager, count = token_loss(logits, labels)
    (grad_eager,) = torch.autograd.grad(eager, logits)
    model_module.compile_token_loss()
    try:
        fused, fused_count = token_loss(logits, labels)
        (grad_fused,) = torch.autograd.grad(fused, logits)
    finally:
        model_module._cross_entropy = model_module._cross_entropy_sum
    assert int(count) == int(fused_count) == 120
    assert torch.allclose(fused, eager, rtol=1e-4)
    assert torch.allclose(grad_fused.float(), grad_eager.float(), atol=1e-2)


def test_categorical_draw_has_the_distribution_of_its_probabilities():
    """The sampler's inverse-CDF draw against the probabilities (a chi-square test over 40,000
    draws of each of two rows, one with zero-probability tokens, which are never drawn)."""
    from scipy.stats import chisquare

    probs = torch.tensor([[0.5, 0.25, 0.125, 0.0625, 0.0625, 0.0],
                          [0.0, 3.0, 0.0, 1.0, 0.0, 6.0]])  # unnormalized, as softmax's rounding leaves rows
    draws = categorical_draw(probs.repeat_interleave(40_000, 0), torch.Generator().manual_seed(0)).view(2, -1)
    for row, got in zip(probs, draws):
        counts = torch.bincount(got, minlength=6).double()
        assert (counts[row == 0] == 0).all()
        expected = row[row > 0].double() / row.sum() * got.numel()
        assert chisquare(counts[row > 0].numpy(), expected.numpy()).pvalue > 1e-3


@given(st.lists(st.lists(st.floats(0, 1, width=32), min_size=1, max_size=12).filter(lambda r: max(r) > 0), min_size=1,
                max_size=6),
       st.integers(0, 2**32 - 1))
def test_categorical_draw_never_draws_a_token_without_mass(rows, seed):
    width = max(map(len, rows))
    probs = torch.tensor([r + [0.0] * (width - len(r)) for r in rows])
    got = categorical_draw(probs, torch.Generator().manual_seed(seed))
    assert got.shape == (len(rows),) and bool((probs[torch.arange(len(rows)), got] > 0).all())
    # a uniform at the top of [0, 1) (rounding up to the row's total) still lands on a token with mass
    top = torch.Generator().manual_seed(seed)
    torch_rand = torch.rand
    try:
        torch.rand = lambda *a, **k: torch.full(a[:2], 1.0 - 1e-9, dtype=k.get("dtype"))
        assert bool((probs[torch.arange(len(rows)), categorical_draw(probs, top)] > 0).all())
    finally:
        torch.rand = torch_rand


def test_categorical_draw_refuses_rows_without_mass_or_finite_values_and_reads_half_precision():
    nan = float("nan")
    for bad in ([[0.0, 0.0, 0.0]], [[0.2, nan, 0.5]], [[0.2, float("inf"), 0.5]], [[0.5, -0.1, 0.6]]):
        with pytest.raises(ValueError, match="no mass"):
            categorical_draw(torch.tensor(bad))
    with pytest.raises(ValueError, match="no mass"):  # a NaN logit reaches the sampler, not a silent token
        sample_next(torch.tensor([[1.0, nan, 2.0]]), 1.0, None, None)
    probs = torch.tensor([[0.0, 1.0, 3.0, 0.0]] * 4000, dtype=torch.bfloat16)
    got = categorical_draw(probs, torch.Generator().manual_seed(0))
    assert set(got.tolist()) == {1, 2} and abs(float((got == 2).float().mean()) - 0.75) < 0.03
