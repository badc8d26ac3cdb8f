import math

import pytest
import torch

from native_pyg.kernels.runtime import Runtime, current_runtime
from native_pyg.nn import SCORERS, ComplEx, DistMult, KGScorer, RotatE, TransE

HIDDEN, MARGIN, EPS = 6, 4.0, 2.0


def make(name):
    scorer = SCORERS[name](HIDDEN, margin=MARGIN, epsilon=EPS)
    ent = scorer.init_entity_(torch.empty(9, scorer.entity_dim))
    rel = scorer.init_relation_(torch.empty(5, scorer.relation_dim))
    return scorer, ent, rel


def test_registry():
    assert SCORERS == {'rotate': RotatE, 'transe': TransE, 'distmult': DistMult,
                       'complex': ComplEx}
    assert all(issubclass(c, KGScorer) for c in SCORERS.values())
    dims = {n: (c(HIDDEN).entity_dim, c(HIDDEN).relation_dim) for n, c in SCORERS.items()}
    assert dims == {'rotate': (12, 6), 'transe': (6, 6), 'distmult': (6, 6), 'complex': (12, 12)}
    assert all(list(c(HIDDEN).parameters()) == [] for c in SCORERS.values())


@pytest.mark.parametrize('name', sorted(SCORERS))
def test_broadcasting_matches_aligned(name):
    scorer, ent, rel = make(name)
    h, r = ent[[0, 1, 2]], rel[[0, 3, 4]]
    tails = ent[torch.tensor([[3, 4], [5, 6], [7, 8]])]         # [3, 2, De]
    out = scorer(h[:, None], r[:, None], tails)
    assert out.shape == (3, 2) and out.dtype == torch.float32
    for k in range(2):
        torch.testing.assert_close(out[:, k], scorer(h, r, tails[:, k]))


@pytest.mark.parametrize('name', sorted(SCORERS))
@pytest.mark.parametrize('chunk_size', [1, 4, None])
def test_one_vs_all_matches_forward(name, chunk_size):
    scorer, ent, rel = make(name)
    h, r, t = ent[[0, 2, 5, 5]], rel[[1, 0, 4, 4]], ent[[1, 1, 3, 8]]
    tails = scorer.score_tails(h, r, ent, chunk_size=chunk_size)
    heads = scorer.score_heads(r, t, ent, chunk_size=chunk_size)
    assert tails.shape == heads.shape == (4, ent.size(0))
    n = ent.size(0)
    expect_tails = scorer(h.repeat_interleave(n, 0), r.repeat_interleave(n, 0), ent.repeat(4, 1))
    expect_heads = scorer(ent.repeat(4, 1), r.repeat_interleave(n, 0), t.repeat_interleave(n, 0))
    torch.testing.assert_close(tails, expect_tails.view(4, n), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(heads, expect_heads.view(4, n), atol=1e-5, rtol=1e-5)


def test_rotate_equals_complex_rotation_with_scaled_phase():
    scorer, ent, rel = make('rotate')
    h, r, t = ent[:4], rel[:4], ent[4:8]
    hc = torch.complex(*h.chunk(2, -1))
    tc = torch.complex(*t.chunk(2, -1))
    phase = r / ((MARGIN + EPS) / HIDDEN) * math.pi
    expect = MARGIN - (hc * torch.polar(torch.ones_like(phase), phase) - tc).abs().sum(-1)
    torch.testing.assert_close(scorer(h, r, t), expect)


def test_rotate_initialisation_ranges():
    scorer = RotatE(50, margin=12.0, epsilon=2.0)
    ent = scorer.init_entity_(torch.empty(400, scorer.entity_dim))
    rel = scorer.init_relation_(torch.empty(400, scorer.relation_dim))
    ent_range, rel_range = 14.0 / 100, 14.0 / 50
    assert ent.abs().max() <= ent_range and ent.abs().max() > 0.95 * ent_range
    assert rel.abs().max() <= rel_range and rel.abs().max() > 0.95 * rel_range


def test_complex_equals_real_part_of_trilinear_product():
    scorer, ent, rel = make('complex')
    h, r, t = ent[:4], rel[:4], ent[4:8]
    hc, rc, tc = (torch.complex(*x.chunk(2, -1)) for x in (h, r, t))
    torch.testing.assert_close(scorer(h, r, t), (hc * rc * tc.conj()).sum(-1).real)


def test_distmult_and_transe_formulas():
    scorer, ent, rel = make('distmult')
    torch.testing.assert_close(scorer(ent[:3], rel[:3], ent[3:6]),
                               (ent[:3] * rel[:3] * ent[3:6]).sum(-1))
    scorer, ent, rel = make('transe')
    n = torch.nn.functional.normalize
    expect = MARGIN - (n(ent[:3]) + n(rel[:3]) - n(ent[3:6])).abs().sum(-1)
    torch.testing.assert_close(scorer(ent[:3], rel[:3], ent[3:6]), expect)
    raw = TransE(HIDDEN, margin=MARGIN, p_norm=2.0, normalize=False)
    torch.testing.assert_close(raw(ent[:3], rel[:3], ent[3:6]),
                               MARGIN - (ent[:3] + rel[:3] - ent[3:6]).norm(dim=-1))
    torch.testing.assert_close(raw.score_heads(rel[:3], ent[3:6], ent, chunk_size=2)[:, 0],
                               raw(ent[:1].expand(3, -1), rel[:3], ent[3:6]))


def test_gradients_flow_through_one_vs_all():
    scorer, ent, rel = make('rotate')
    ent.requires_grad_()
    scorer.score_tails(ent[:2], rel[:2], ent, chunk_size=3).sum().backward()
    assert ent.grad is not None and torch.isfinite(ent.grad).all() and ent.grad.abs().sum() > 0


def test_custom_scorer_uses_the_chunked_default():
    class Negative(KGScorer):  # no fast 1-vs-all of its own
        def forward(self, head, rel, tail):
            return -(head + rel - tail).norm(dim=-1)

    scorer = Negative(HIDDEN)
    ent, rel = torch.randn(7, HIDDEN), torch.randn(3, HIDDEN)
    tails = scorer.score_tails(ent[:3], rel, ent, chunk_size=2)
    heads = scorer.score_heads(rel, ent[:3], ent, chunk_size=3)
    for i in range(3):
        torch.testing.assert_close(tails[i], scorer(ent[i].expand(7, -1), rel[i].expand(7, -1), ent))
        torch.testing.assert_close(heads[i], scorer(ent, rel[i].expand(7, -1), ent[i].expand(7, -1)))


def test_rotate_blocked_cpu_kernel_matches_autograd_path():
    # The no-grad CPU path works in 8 x 256 blocks: cover ragged block edges.
    torch.manual_seed(0)
    scorer = SCORERS['rotate'](6, margin=MARGIN, epsilon=EPS)
    ent, rel = torch.randn(600, scorer.entity_dim), torch.randn(19, scorer.relation_dim)
    h = ent[:19]
    fast = scorer.score_tails(h, rel, ent)
    slow = scorer.score_tails(h, rel, ent.clone().requires_grad_(), chunk_size=100).detach()
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    fast_h = scorer.score_heads(rel, h, ent)
    slow_h = scorer.score_heads(rel, h, ent.clone().requires_grad_()).detach()
    torch.testing.assert_close(fast_h, slow_h, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('name', sorted(SCORERS))
@pytest.mark.parametrize('per_negative', [False, True])
def test_score_corrupted_matches_explicit_triples(name, per_negative):
    scorer, ent, rel = make(name)
    g = torch.Generator().manual_seed(1)
    h = ent[[0, 1, 2, 3]].clone().requires_grad_()
    t = ent[[4, 5, 6, 7]].clone().requires_grad_()
    r = rel[[0, 1, 2, 3]].clone().requires_grad_()
    cand = ent[torch.randint(0, 9, (4, 5), generator=g)].clone().requires_grad_()
    cand.data[0, 0] = t.data[0]  # a corruption equal to the positive: |difference| = 0
    flip = torch.rand(4, 5 if per_negative else 1, generator=g).squeeze(-1) < 0.5
    flip[0] = False
    got = scorer.score_corrupted(h, r, t, cand, flip)
    f = flip.view(4, -1)
    want = torch.stack([torch.stack([
        scorer(cand[b, k], r[b], t[b]) if f[b, k if per_negative else 0] else
        scorer(h[b], r[b], cand[b, k]) for k in range(5)]) for b in range(4)])
    torch.testing.assert_close(got, want)
    grads = torch.autograd.grad(got.square().sum(), (h, r, t, cand))
    expect = torch.autograd.grad(want.square().sum(), (h, r, t, cand))
    for a, b in zip(grads, expect):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compiled_cpu_distances_match_the_eager_kernel():
    from native_pyg.kernels import distance_kernels as scorers
    scorer, ent, rel = make('rotate')
    g = torch.Generator().manual_seed(0)
    # more queries and candidates than one 32 x 1024 tile, neither a multiple
    cand = torch.randn(1100, scorer.entity_dim, generator=g)
    h = torch.randn(40, scorer.entity_dim, generator=g)
    r = rel[torch.arange(40) % 5]
    eager = scorer.score_tails(h, r, cand)
    with Runtime(compile=True):
        compiled = scorer.score_tails(h, r, cand)
        heads = scorer.score_heads(r, h, cand)
    assert not scorers._COMPILER['failed'], 'torch.compile failed here'
    assert current_runtime().compile is False  # restored on exit
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(heads, scorer.score_heads(r, h, cand), rtol=1e-5, atol=1e-4)


def test_compiled_corrupted_distances_equal_eager_values_and_gradients():
    # the training step's [B, 1, 2D] queries against [B, K, 2D] corrupted candidates
    from native_pyg.kernels import distance_kernels as scorers
    scorer = SCORERS['rotate'](6, margin=6.0)
    g = torch.Generator().manual_seed(0)
    h, t = (torch.randn(5, scorer.entity_dim, generator=g, requires_grad=True) for _ in range(2))
    r = torch.randn(5, scorer.relation_dim, generator=g, requires_grad=True)
    cand = torch.randn(5, 7, scorer.entity_dim, generator=g)
    cand[1, 0] = torch.cat(scorer._rotate(h[1], r[1]), -1).detach()  # a vanishing difference
    cand.requires_grad_()
    flip = torch.tensor([True, False, True, False, False])
    weights = torch.randn(5, 7, generator=g)

    def scores_and_grads():
        out = scorer.score_corrupted(h, r, t, cand, flip)
        return (out, *torch.autograd.grad((out * weights).sum(), (h, r, t, cand)))

    eager = scores_and_grads()
    with Runtime(compile=True):
        fused = scores_and_grads()
    assert not scorers._COMPILER['failed'], 'torch.compile failed here'
    for a, b in zip(fused, eager):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_without_a_compiler_the_eager_kernels_run_after_one_warning(monkeypatch):
    from native_pyg.kernels import distance_kernels as scorers

    def no_compiler(fn, **kwargs):
        def kernel(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore")
        return kernel

    monkeypatch.setattr(scorers.torch, 'compile', no_compiler)
    monkeypatch.setattr(scorers, '_KERNELS', {})
    monkeypatch.setitem(scorers._COMPILER, 'failed', False)
    scorer, ent, rel = make('rotate')
    cand = ent[5:9].unsqueeze(0).expand(5, -1, -1).clone().requires_grad_()
    flip = torch.zeros(5, dtype=torch.bool)
    eager = scorer.score_corrupted(ent[:5], rel[:5], ent[:5], cand, flip)
    with pytest.warns(UserWarning) as caught, Runtime(compile=True):
        step = scorer.score_corrupted(ent[:5], rel[:5], ent[:5], cand, flip)
        step.sum().backward()
        tails = scorer.score_tails(ent[:5], rel[:5], ent[5:9].detach())
    messages = [str(w.message) for w in caught]
    assert messages == ["compiled distances unavailable (RuntimeError: InvalidCxxCompiler: "
                        "No working C++ compiler found); using the eager kernels"]
    torch.testing.assert_close(step, eager)
    assert torch.isfinite(cand.grad).all()
    torch.testing.assert_close(tails, scorer.score_tails(ent[:5], rel[:5], ent[5:9].detach()))
