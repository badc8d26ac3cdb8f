"""Optimisers for large entity tables: SparseAdam, row-wise Adagrad, the split."""
import io
import math

import pytest
import torch

from native_pyg.training.optimizers import (TABLE_OPTIMIZERS, RowWiseAdagrad, SplitOptimizer,
                                            build_optimizer, dense_adam, set_learning_rates)


def _pair(n=10, d=4, dtype=torch.float64):
    """A sparse and a dense embedding with the same weights."""
    sparse = torch.nn.Embedding(n, d, sparse=True).to(dtype)
    dense = torch.nn.Embedding(n, d).to(dtype)
    dense.weight.data.copy_(sparse.weight.data)
    return sparse, dense


def _step(emb, opt, idx, target):
    opt.zero_grad(set_to_none=True)
    ((emb(idx) - target) ** 2).sum().backward()
    opt.step()


def test_sparse_adam_equals_adam_on_step_one_and_has_no_stale_momentum():
    sparse, dense = _pair()
    scaled = torch.nn.Embedding(10, 4).double()
    scaled.weight.data.copy_(sparse.weight.data)
    w0 = sparse.weight.detach().clone()
    s_opt = torch.optim.SparseAdam(sparse.parameters(), lr=0.05, eps=1e-8)
    d_opt = torch.optim.Adam(dense.parameters(), lr=0.05, eps=1e-8)
    # SparseAdam adds eps before the bias correction, Adam after it: on step one
    # that is Adam with eps / sqrt(1 - beta2)
    e_opt = torch.optim.Adam(scaled.parameters(), lr=0.05, eps=1e-8 / math.sqrt(1 - 0.999))
    idx, target = torch.tensor([1, 3, 3, 7]), torch.randn(4, 4, dtype=torch.float64)
    for emb, opt in ((sparse, s_opt), (dense, d_opt), (scaled, e_opt)):
        _step(emb, opt, idx, target)
    touched, untouched = torch.tensor([1, 3, 7]), torch.tensor([0, 2, 4, 5, 6, 8, 9])
    assert not torch.equal(sparse.weight[touched], w0[touched])
    torch.testing.assert_close(sparse.weight[touched], scaled.weight[touched])
    torch.testing.assert_close(sparse.weight[touched], dense.weight[touched], atol=1e-5, rtol=0)
    assert torch.equal(sparse.weight[untouched], w0[untouched])
    assert torch.equal(dense.weight[untouched], w0[untouched])
    after_one = sparse.weight.detach().clone()
    for _ in range(3):  # rows 1, 3, 7 get no gradient from here on
        idx, target = torch.tensor([0, 2]), torch.randn(2, 4, dtype=torch.float64)
        _step(sparse, s_opt, idx, target)
        _step(dense, d_opt, idx, target)
    assert torch.equal(sparse.weight[touched], after_one[touched])
    moved = (dense.weight[touched] - after_one[touched]).abs()
    assert (moved > 1e-3).all()  # Adam's momentum keeps moving them
    never = torch.tensor([4, 5, 6, 8, 9])
    assert torch.equal(sparse.weight[never], w0[never])


def test_rowwise_adagrad_matches_a_hand_computation():
    n, d, lr, eps, g0 = 6, 3, 0.1, 0.05, 0.5  # eps large enough to pin where it goes
    emb = torch.nn.Embedding(n, d, sparse=True).double()
    w = emb.weight.detach().tolist()
    acc = [g0] * n
    opt = RowWiseAdagrad(emb.parameters(), lr=lr, eps=eps, initial_accumulator_value=g0)
    for rows in ([0, 2, 2], [2, 4], [1, 5]):
        target = torch.randn(len(rows), d, dtype=torch.float64)
        before_w, before_acc = emb.weight.detach().clone(), opt.state[emb.weight]['sum'].clone()
        _step(emb, opt, torch.tensor(rows), target)
        grad = {}
        for k, i in enumerate(rows):  # d/dw of (w_i - t_k)^2 summed over the batch
            g = [2 * (w[i][j] - target[k, j].item()) for j in range(d)]
            grad[i] = [a + b for a, b in zip(grad.get(i, [0.0] * d), g)]
        for i, g in grad.items():
            acc[i] += sum(x * x for x in g) / d
            w[i] = [w[i][j] - lr * g[j] / (math.sqrt(acc[i]) + eps) for j in range(d)]
        torch.testing.assert_close(emb.weight, torch.tensor(w, dtype=torch.float64))
        torch.testing.assert_close(opt.state[emb.weight]['sum'],
                                   torch.tensor(acc, dtype=torch.float64))
        untouched = [i for i in range(n) if i not in grad]
        assert torch.equal(emb.weight[untouched], before_w[untouched])
        assert torch.equal(opt.state[emb.weight]['sum'][untouched], before_acc[untouched])


def test_rowwise_adagrad_dense_gradient_equals_sparse_gradient():
    sparse, dense = _pair(n=8, d=5)
    s_opt = RowWiseAdagrad(sparse.parameters(), lr=0.2)
    d_opt = RowWiseAdagrad(dense.parameters(), lr=0.2)
    for rows in ([0, 3, 3], [3, 6]):
        idx, target = torch.tensor(rows), torch.randn(len(rows), 5, dtype=torch.float64)
        _step(sparse, s_opt, idx, target)
        _step(dense, d_opt, idx, target)
        assert sparse.weight.grad.is_sparse and not dense.weight.grad.is_sparse
        torch.testing.assert_close(sparse.weight, dense.weight)
        torch.testing.assert_close(s_opt.state[sparse.weight]['sum'],
                                   d_opt.state[dense.weight]['sum'])
    assert s_opt.state[sparse.weight]['sum'][[1, 2, 4, 5, 7]].eq(0).all()


def test_rowwise_adagrad_with_one_column_is_adagrad():
    ours, ref = _pair(n=7, d=1)
    ours_opt = RowWiseAdagrad(ours.parameters(), lr=0.3, initial_accumulator_value=0.1)
    ref_opt = torch.optim.Adagrad(ref.parameters(), lr=0.3, initial_accumulator_value=0.1)
    for rows in ([1, 1, 4], [4, 6], [0]):
        idx, target = torch.tensor(rows), torch.randn(len(rows), 1, dtype=torch.float64)
        _step(ours, ours_opt, idx, target)
        _step(ref, ref_opt, idx, target)
        torch.testing.assert_close(ours.weight, ref.weight)
    # a 1-D parameter with a dense gradient: element-wise, plain Adagrad too
    a = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    b = torch.nn.Parameter(a.detach().clone())
    opt_a, opt_b = RowWiseAdagrad([a], lr=0.3), torch.optim.Adagrad([b], lr=0.3)
    for _ in range(3):
        for p, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            (p ** 3).sum().backward()
            opt.step()
    assert opt_a.state[a]['sum'].shape == (5,)
    torch.testing.assert_close(a, b)


def _state_numel(opt):
    return sum(v.numel() for s in opt.state.values() for k, v in s.items()
               if k != 'step' and torch.is_tensor(v))


def test_state_memory_rowwise_adagrad_is_one_number_per_row():
    n, d = 1000, 16
    emb = torch.nn.Embedding(n, d, sparse=True)
    rowwise = RowWiseAdagrad(emb.parameters())
    sparse_adam = torch.optim.SparseAdam(emb.parameters())
    emb(torch.tensor([3, 5])).sum().backward()
    rowwise.step()
    sparse_adam.step()  # SparseAdam's moments are dense: exp_avg and exp_avg_sq, [N, D] each
    assert _state_numel(rowwise) == n
    assert _state_numel(sparse_adam) == 2 * n * d


class _Model(torch.nn.Module):
    def __init__(self, sparse=True):
        super().__init__()
        self.entity_emb = torch.nn.Embedding(20, 4, sparse=sparse)
        self.rel_emb = torch.nn.Embedding(3, 4)
        self.proj = torch.nn.Linear(4, 4)

    def loss(self, step):
        g = torch.Generator().manual_seed(step)
        h, r = torch.randint(0, 20, (6,), generator=g), torch.randint(0, 3, (6,), generator=g)
        return (self.proj(self.entity_emb(h) * self.rel_emb(r)) ** 2).sum()


def _train(model, opt, steps):
    for step in steps:
        opt.zero_grad(set_to_none=True)
        model.loss(step).backward()
        opt.step()


def test_build_optimizer_adam_is_plain_adam():
    model = _Model()
    opt = build_optimizer(model, lr=0.01)
    assert type(opt) is torch.optim.Adam
    assert [p for g in opt.param_groups for p in g['params']] == list(model.parameters())
    assert TABLE_OPTIMIZERS == ('adam', 'sparse_adam', 'rowwise_adagrad')


def test_the_table_takes_its_own_learning_rate_also_after_a_resume():
    model = _Model()
    opt = build_optimizer(model, lr=0.001, table_optimizer='rowwise_adagrad', table_lr=0.1)
    assert [g['lr'] for g in opt.table.param_groups] == [0.1]
    assert {g['lr'] for g in opt.dense.param_groups} == {0.001}
    set_learning_rates(opt, 0.002)  # no table_lr: the one rate everywhere
    assert {g['lr'] for g in opt.param_groups} == {0.002}
    set_learning_rates(opt, 0.003, table_lr=0.2)
    assert [g['lr'] for g in opt.table.param_groups] == [0.2]
    assert {g['lr'] for g in opt.dense.param_groups} == {0.003}


@pytest.mark.parametrize('name,table', [('sparse_adam', torch.optim.SparseAdam),
                                        ('rowwise_adagrad', RowWiseAdagrad)])
def test_split_optimizer_resumes_bit_identically(name, table):
    torch.manual_seed(1)
    straight = _Model()
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    opt = build_optimizer(straight, lr=0.05, table_optimizer=name)
    assert isinstance(opt, SplitOptimizer) and type(opt.table) is table
    assert type(opt.dense) is torch.optim.Adam
    assert opt.table.param_groups[0]['params'] == [straight.entity_emb.weight]
    for group in opt.param_groups:  # how the trainer resets learning rates
        group['lr'] = 0.02
    assert opt.table.param_groups[0]['lr'] == opt.dense.param_groups[0]['lr'] == 0.02
    _train(straight, opt, range(4))

    first = _Model()
    first.load_state_dict(init)
    opt = build_optimizer(first, lr=0.02, table_optimizer=name)
    _train(first, opt, range(2))
    buf = io.BytesIO()
    torch.save({'model': first.state_dict(), 'optimizer': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    resumed = _Model()
    resumed.load_state_dict(saved['model'])
    opt = build_optimizer(resumed, lr=0.02, table_optimizer=name)
    opt.load_state_dict(saved['optimizer'])
    _train(resumed, opt, range(2, 4))
    for (key, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), key
    assert not torch.equal(straight.entity_emb.weight, init['entity_emb.weight'])


def test_split_optimizer_with_only_tables_and_zero_grad():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = build_optimizer(emb, lr=0.1, table_optimizer='rowwise_adagrad')
    assert opt.dense is None and len(opt.param_groups) == 1
    emb(torch.tensor([1])).sum().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    assert emb.weight.grad is None
    opt.load_state_dict(opt.state_dict())


def test_build_optimizer_refusals_are_one_line():
    with pytest.raises(ValueError, match='sparse_adam, rowwise_adagrad') as err:
        build_optimizer(_Model(), lr=0.1, table_optimizer='sgd')
    assert '\n' not in str(err.value) and "'sgd'" in str(err.value)
    with pytest.raises(ValueError, match='sparse=True') as err:
        build_optimizer(_Model(sparse=False), lr=0.1, table_optimizer='rowwise_adagrad')
    assert '\n' not in str(err.value)
    split = build_optimizer(_Model(), lr=0.1, table_optimizer='sparse_adam')
    with pytest.raises(ValueError, match='table_optimizer changed'):
        split.load_state_dict(torch.optim.Adam(_Model().parameters()).state_dict())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_rowwise_adagrad_on_cuda_matches_cpu():
    cpu = torch.nn.Embedding(9, 3, sparse=True)
    gpu = torch.nn.Embedding(9, 3, sparse=True).cuda()
    gpu.weight.data.copy_(cpu.weight.data)
    opts = RowWiseAdagrad(cpu.parameters(), lr=0.1), RowWiseAdagrad(gpu.parameters(), lr=0.1)
    for rows in ([0, 4, 4], [4, 8]):
        target = torch.randn(len(rows), 3)
        _step(cpu, opts[0], torch.tensor(rows), target)
        _step(gpu, opts[1], torch.tensor(rows).cuda(), target.cuda())
    assert opts[1].state[gpu.weight]['sum'].is_cuda
    torch.testing.assert_close(gpu.weight.cpu(), cpu.weight, atol=1e-6, rtol=1e-5)
    opts[1].load_state_dict(opts[0].state_dict())  # a CPU checkpoint loads onto CUDA
    assert opts[1].state[gpu.weight]['sum'].is_cuda


def _allocated_bytes_during(fn) -> int:
    """Bytes the CPU allocator hands out while ``fn`` runs (nested calls
    counted more than once: an upper bound)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)


def test_dense_adam_is_fused_on_cpu_and_steps_as_adam_without_temporaries():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 1024))
    plain_weight = torch.nn.Parameter(weight.detach().clone())
    opt = dense_adam([weight], lr=1e-2)
    plain = torch.optim.Adam([plain_weight], lr=1e-2)
    assert opt.param_groups[0]['fused'] is True and not plain.param_groups[0]['fused']
    for _ in range(5):
        grad = torch.randn_like(weight)
        weight.grad, plain_weight.grad = grad.clone(), grad.clone()
        opt.step()
        plain.step()
    torch.testing.assert_close(weight, plain_weight, rtol=1e-5, atol=1e-6)
    # the unfused step draws two parameter-sized temporaries; the fused one none
    size = weight.numel() * weight.element_size()
    assert _allocated_bytes_during(plain.step) >= 2 * size
    assert _allocated_bytes_during(opt.step) < size // 16


def test_build_optimizer_fuses_every_adam_and_a_loaded_state_keeps_its_own_setting():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4, sparse=True), torch.nn.Linear(4, 4))
    assert build_optimizer(model, 1e-3, 'adam').param_groups[0]['fused'] is True
    split = build_optimizer(model, 1e-3, 'rowwise_adagrad')
    assert split.dense.param_groups[0]['fused'] is True
    # a checkpoint of an unfused run resumes unfused: it steps as it was saved
    dense = torch.nn.Linear(4, 4)
    saved = torch.optim.Adam(dense.parameters(), lr=1e-3).state_dict()
    opt = dense_adam(dense.parameters(), 1e-3)
    opt.load_state_dict(saved)
    assert not opt.param_groups[0]['fused']


def test_dense_adam_leaves_unsupported_devices_unfused():
    params = [torch.nn.Parameter(torch.zeros(2, device='meta'))]
    assert dense_adam(params, 1e-3).param_groups[0]['fused'] is None
