import math
from pathlib import Path

import pytest
import torch

from native_pyg.data import relation_tph_hpt, split_triples
from native_pyg.loader.neighbor_loader import KGBatch
from native_pyg.datasets import SyntheticMMKG
from native_pyg.pipeline import build_model
from native_pyg.training import (BernoulliNegativeSampler, NonFiniteLossError, RunConfig, Trainer,
                                 load_checkpoint, margin_ranking_loss, save_checkpoint,
                                 self_adversarial_loss, structural_l2)
from native_pyg.data.relations import triple_keys
from tests.conftest import small_run
from tests.helpers.runs import assert_same_training, seeded_trainer


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=1, num_entities=300, num_relations=4)[0]


def test_sampler_never_returns_known_triples():
    # a dense graph: most random corruptions collide with a known triple
    n = 12
    h, t = torch.meshgrid(torch.arange(n), torch.arange(n), indexing='ij')
    keep = (h.flatten() + t.flatten()) % 4 != 0  # 3/4 of all pairs are known
    train = torch.stack([h.flatten()[keep], torch.zeros(int(keep.sum()), dtype=torch.long),
                         t.flatten()[keep]], 1)
    sampler = BernoulliNegativeSampler(train, n, 1, num_negatives=64, seed=0, max_rounds=3)
    neg, corrupt_head = sampler.sample(train)
    hh = torch.where(corrupt_head.unsqueeze(1), neg, train[:, :1])
    tt = torch.where(corrupt_head.unsqueeze(1), train[:, 2:], neg)
    keys = triple_keys(torch.stack([hh, torch.zeros_like(hh), tt], -1), n, 1)
    known = triple_keys(train, n, 1)
    assert not torch.isin(keys, known).any()
    # without filtering, collisions do happen on this graph
    raw = BernoulliNegativeSampler(train, n, 1, num_negatives=64, filtered=False, seed=0)
    neg, ch = raw.sample(train)
    hh = torch.where(ch.unsqueeze(1), neg, train[:, :1])
    tt = torch.where(ch.unsqueeze(1), train[:, 2:], neg)
    assert torch.isin(triple_keys(torch.stack([hh, torch.zeros_like(hh), tt], -1), n, 1),
                      known).any()


def test_sampler_impossible_row_is_an_error():
    train = torch.tensor([[0, 0, 1], [0, 0, 0]])  # head 0 already links to every entity
    sampler = BernoulliNegativeSampler(train, 2, 1, num_negatives=4, bernoulli=False, seed=0,
                                       max_rounds=2)
    with pytest.raises(RuntimeError, match='no possible negative'):
        for _ in range(20):
            sampler.sample(torch.tensor([[0, 0, 1]] * 8))


def test_bernoulli_ratio_matches_tph_hpt(small):
    train = split_triples(small, 'train')
    sampler = BernoulliNegativeSampler(train, 300, 4, num_negatives=1, seed=0)
    tph, hpt = relation_tph_hpt(train, 4)
    reps = train.repeat(20, 1)
    _, corrupt_head = sampler.sample(reps)
    for r in range(4):
        sel = reps[:, 1] == r
        expected = float(tph[r] / (tph[r] + hpt[r]))
        got = corrupt_head[sel].float().mean().item()
        sd = math.sqrt(expected * (1 - expected) / int(sel.sum()))
        assert abs(got - expected) < 5 * sd + 1e-6
    uniform = BernoulliNegativeSampler(train, 300, 4, num_negatives=1, bernoulli=False, seed=0)
    assert abs(uniform.sample(reps)[1].float().mean().item() - 0.5) < 0.02
    # seeded
    a = BernoulliNegativeSampler(train, 300, 4, seed=5).sample(train[:50])
    b = BernoulliNegativeSampler(train, 300, 4, seed=5).sample(train[:50])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_losses_by_hand():
    pos, neg = torch.tensor([2.0]), torch.tensor([[1.0, -1.0]])
    p = torch.softmax(torch.tensor([2.0, -2.0]), 0)
    expected = 0.5 * (-math.log(torch.sigmoid(pos).item())
                      - (p * torch.log(torch.sigmoid(-neg[0]))).sum().item())
    assert self_adversarial_loss(pos, neg, 2.0).item() == pytest.approx(expected, rel=1e-6)
    assert margin_ranking_loss(pos, neg, 1.5).item() == pytest.approx((0.5 + 0.0) / 2)


@pytest.mark.parametrize('adversarial', [False, True])
def test_loss_decreases(small, adversarial):
    run = small_run(adversarial=adversarial, epochs=8)
    trainer = Trainer(build_model(small, run), small, run)
    hist = trainer.fit()
    assert hist[-1]['kgc_loss'] < 0.8 * hist[0]['kgc_loss']
    assert (trainer.generator is not None) == adversarial
    if adversarial:
        assert all(math.isfinite(r['g_loss']) and math.isfinite(r['critic']) for r in hist)
        # RotatE's penalty is a constant (its gradient norm is fixed): not logged (issue 39)
        constant = trainer.model.scorer.constant_gradient_norm(run.training.gp_on)
        assert all(('gp' in r) == (constant is None) for r in hist)


def test_a_penalty_that_varies_is_logged(small):
    run = small_run(adversarial=True, epochs=2).override(['model.scorer=distmult'])
    trainer = Trainer(build_model(small, run), small, run)
    hist = trainer.fit()
    assert trainer.model.scorer.constant_gradient_norm('both') is None
    assert all(math.isfinite(r['gp']) for r in hist)


def test_resume_gives_identical_parameters(small, tmp_path, one_thread):
    # structure dropout draws from its own generator: its state must resume too
    run = small_run(adversarial=True, epochs=4, eval_every=2, regul_rate=1e-3,
                    structure_dropout=0.3)
    straight = seeded_trainer(small, run, out_dir=str(tmp_path / 'a'))
    straight.fit()
    last_a = load_checkpoint(str(tmp_path / 'a' / 'last.pt'))

    first = seeded_trainer(small, run, out_dir=str(tmp_path / 'b'))
    first.fit(epochs=2)
    torch.manual_seed(1234)  # a fresh process: global RNG elsewhere
    resumed = seeded_trainer(small, run, out_dir=str(tmp_path / 'b'))
    resumed.resume(str(tmp_path / 'b' / 'last.pt'))
    assert resumed.epoch == 2
    resumed.fit()
    assert_same_training(last_a, load_checkpoint(str(tmp_path / 'b' / 'last.pt')), 4)
    assert (tmp_path / 'b' / 'curves.png').exists() and (tmp_path / 'b' / 'model.pt').exists()
    lines = (tmp_path / 'b' / 'history.jsonl').read_text().strip().splitlines()
    assert len(lines) == 4


def test_non_finite_loss_stops_and_keeps_last_checkpoint(small, tmp_path):
    run = small_run(adversarial=False, epochs=3)
    trainer = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path))
    trainer.fit(epochs=1)
    before = load_checkpoint(str(tmp_path / 'last.pt'))
    params = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    real = trainer.model.score_negatives

    def poisoned(*args, **kw):
        pos, neg = real(*args, **kw)
        return pos * float('nan'), neg

    trainer.model.score_negatives = poisoned
    with pytest.raises(NonFiniteLossError, match='last good checkpoint'):
        trainer.fit(epochs=3)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, params[k])  # no update from the bad step
    after = load_checkpoint(str(tmp_path / 'last.pt'))
    assert after['epoch'] == before['epoch'] == 1


def test_checkpoint_is_atomic(tmp_path):
    path = tmp_path / 'ck.pt'
    save_checkpoint({'a': torch.ones(2)}, str(path))

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError, match='boom'):
        save_checkpoint({'a': Unpicklable()}, str(path))
    assert torch.equal(load_checkpoint(str(path))['a'], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ['ck.pt']  # no temporary left behind
    with pytest.raises(FileNotFoundError, match='nothing.pt'):
        load_checkpoint(str(tmp_path / 'nothing.pt'))


def test_config_overrides_and_errors(tmp_path):
    run = RunConfig().override(['training.lr=1e-4', 'model.modalities=[image]'])
    assert run.training.lr == 1e-4 and run.model.modalities == ['image']
    with pytest.raises(ValueError, match="unknown key 'training.lrr'"):
        RunConfig().override(['training.lrr=1'])
    with pytest.raises(ValueError, match='expected key=value'):
        RunConfig().override(['training.lr'])
    bad = tmp_path / 'bad.yaml'
    bad.write_text('training:\n  epochs: many\n')
    with pytest.raises(ValueError, match=r'bad.yaml: training.epochs: expected an integer'):
        RunConfig.from_yaml(str(bad))


@pytest.mark.parametrize('out', [False, True])
def test_second_fit_continues_from_last_epoch(small, one_thread, tmp_path, out):
    run = small_run(adversarial=False, epochs=4, eval_every=1)
    straight = Trainer(build_model(small, run), small, run)
    straight.fit()
    split = Trainer(build_model(small, run), small, run,
                    out_dir=str(tmp_path) if out else None)
    split.fit(epochs=2)  # ends with the best parameters loaded ...
    kept = {k: v.data_ptr() for k, v in split.best.state.items()} if not out else None
    # with a run directory the last parameters are not copied: last.pt holds them
    assert isinstance(split._last_state, str) == out
    split.fit()          # ... but continues from the last ones
    assert [r['loss'] for r in split.history] == [r['loss'] for r in straight.history]
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, split.model.state_dict()[k])
    assert split.best.epoch == straight.best.epoch
    if out:  # with a run folder the best weights are only in its files, never in memory
        assert split.best.state is None and not (tmp_path / 'best.pt').exists()
        best = load_checkpoint(str(tmp_path / 'model.pt'))['model']
    else:  # a better epoch is copied into the kept best tensors, never a third copy
        assert {k: v.data_ptr() for k, v in split.best.state.items()} == kept
        best = split.best.state
    for k, v in straight.best.state.items():
        assert torch.equal(v, best[k])


def test_early_stopping_survives_resume(small, tmp_path, one_thread):
    run = small_run(adversarial=False, epochs=30, eval_every=1, patience=1, lr=0.5)
    trainer = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path))
    trainer.fit()
    stopped_at = trainer.epoch
    assert stopped_at < 30 and trainer.bad_evals >= 1
    again = Trainer(build_model(small, run), small, run, out_dir=str(tmp_path))
    again.resume(str(tmp_path / 'last.pt'))
    again.fit()
    assert again.epoch == stopped_at


def test_l2_term_follows_a_per_negative_corruption_side(small):
    # corrupt_head [B, K]: each negative replaces the head or the tail on its own
    run = small_run(adversarial=False, regul_rate=0.5)
    trainer = Trainer(build_model(small, run), small, run)
    model, gen = trainer.model, torch.Generator().manual_seed(3)
    pos = split_triples(small, 'train')[:16]
    neg = torch.randint(0, small['entity'].num_nodes, (16, 4), generator=gen)
    side = torch.rand(16, 4, generator=gen) < 0.5
    h, r, t = pos.unbind(1)
    negatives = [(int(neg[b, k]), int(r[b]), int(t[b])) if side[b, k]
                 else (int(h[b]), int(r[b]), int(neg[b, k]))
                 for b in range(16) for k in range(4)]
    triples = torch.cat([pos, torch.tensor(negatives)])
    model.train()
    with torch.no_grad():
        pos_s, neg_s = model.score_negatives(h, r, t, neg, side)
        expected = (self_adversarial_loss(pos_s, neg_s, run.training.adv_temperature)
                    + 0.5 * structural_l2(model, *triples.unbind(1)))
    out = trainer.train_step(KGBatch(pos, neg, side))
    assert out['kgc_loss'] == pytest.approx(float(expected), rel=1e-5)
    for wrong in (side[:, :2], side[:8].reshape(-1)[:15], side.unsqueeze(-1)):
        with pytest.raises(ValueError, match=r'corrupt_head: expected shape \[16\] or \[16, 4\]'):
            trainer.train_step(KGBatch(pos, neg, wrong))


def test_bf16_precision_runs_the_projections_in_bf16_and_keeps_fp32_state(small):
    run = small_run(precision='bf16', epochs=6)
    trainer = Trainer(build_model(small, run), small, run)
    seen = []
    mlp = next(iter(trainer.model.projections.mlps.values()))
    handle = mlp.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    hist = trainer.fit()
    handle.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert hist[-1]['kgc_loss'] < 0.8 * hist[0]['kgc_loss']
    # the fp32 default leaves the products in fp32
    fp32 = seeded_trainer(small, small_run())
    seen.clear()
    mlp = next(iter(fp32.model.projections.mlps.values()))
    mlp.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    fp32.train_step(next(iter(fp32.steps)))
    assert set(seen) == {torch.float32}


def test_tf32_precision_covers_forward_and_backward_and_restores_the_setting(small):
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    with pytest.warns(UserWarning, match='tf32 uses the tensor cores of CUDA GPUs; on cpu the '
                                         'step computes in fp32'):
        trainer = seeded_trainer(small, small_run(precision="tf32"))
    forward, backward = [], []
    mlp = next(iter(trainer.model.projections.mlps.values()))
    mlp.register_forward_hook(lambda mod, inp, out: forward.append(matmul.allow_tf32))
    mlp[0].weight.register_hook(lambda grad: backward.append(matmul.allow_tf32))
    batch = next(iter(trainer.steps))
    tf32 = trainer.train_step(batch)
    assert forward and set(forward) == {True} and backward and set(backward) == {True}
    assert matmul.allow_tf32 == before  # evaluation and the user's code keep theirs
    # on a CPU the flag changes nothing: the same step as fp32, bit for bit
    fp32 = seeded_trainer(small, small_run())
    assert fp32.train_step(batch) == tf32
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(),
                                                 fp32.model.parameters()))


class _NewAPIOnly:
    """A stand-in for torch.backends.cuda.matmul after a process set the
    newer fp32_precision switch: reading allow_tf32 raises."""
    fp32_precision = 'ieee'

    @property
    def allow_tf32(self):
        raise RuntimeError('mix of the legacy and new APIs')


@pytest.mark.parametrize('backend,flag,off,on', [
    ('legacy', 'allow_tf32', False, True),  # PyTorch before 2.9 (and every version since)
    ('new-only', 'fp32_precision', 'ieee', 'tf32')])
def test_tf32_switch_is_restored_after_the_step_and_after_an_error(monkeypatch, backend, flag,
                                                                   off, on):
    import types
    from native_pyg.kernels.precision import step_matmuls
    stand_in = types.SimpleNamespace(allow_tf32=False) if backend == 'legacy' else _NewAPIOnly()
    monkeypatch.setattr(torch.backends.cuda, 'matmul', stand_in)
    with step_matmuls('tf32'):
        assert getattr(stand_in, flag) == on
    assert getattr(stand_in, flag) == off
    with pytest.raises(KeyError), step_matmuls('tf32'):
        raise KeyError('a failing step')
    assert getattr(stand_in, flag) == off
    with step_matmuls('fp32'):
        assert getattr(stand_in, flag) == off


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('precision,compile', [('fp32', False), ('tf32', False),
                                               ('bf16', False), ('fp32', True)])
def test_cuda_steps_follow_the_cpu_step(small, precision, compile):
    # two steps on CUDA (each precision, and compiled distances) against fp32 on the CPU; the
    # KGC loss is compared (CoMAT's noise comes from each device's own generator)
    cpu = Trainer(build_model(small, small_run()), small, small_run(device='cpu'))
    run = small_run(device='cuda', precision=precision, compile=compile)
    gpu = Trainer(build_model(small, run), small, run)
    tol = 5e-2 if precision == 'bf16' else 1e-2 if precision == 'tf32' else 1e-3
    for batch in list(cpu.steps)[:2]:
        want, got = cpu.train_step(batch), gpu.train_step(batch)
        assert got['kgc_loss'] == pytest.approx(want['kgc_loss'], rel=tol)
        assert all(math.isfinite(v) for v in got.values()) and set(got) == set(want)
    assert all(p.is_cuda and p.dtype == torch.float32 for p in gpu.model.parameters())


def test_unknown_precision_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"training\.precision: must be one of fp32, tf32, "
                                         r"bf16, got 'fp16'"):
        RunConfig().override(['training.precision=fp16'])


def test_reused_freed_memory_spares_large_tensors_their_page_faults():
    # (the trainer calls reuse_freed_memory on CPUs; in a child process, to leave this one
    # as it is) a 64 MB tensor freed and allocated again is served from malloc's heap, no
    # fresh mmap, so its pages are already resident: no new page faults
    import subprocess
    import sys
    allocator = Path(__file__).resolve().parents[2] / 'native_pyg' / 'kernels' / 'allocator.py'
    code = (  # the module alone: importing the package would double the test's time
        "import importlib.util, resource, torch\n"
        f"spec = importlib.util.spec_from_file_location('allocator', {str(allocator)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "reuse_freed_memory = module.reuse_freed_memory\n"
        "def faults():\n"
        "    x = torch.empty(2 ** 24); x.fill_(1.0); del x\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "    y = torch.empty(2 ** 24); y.fill_(1.0); del y\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before\n"
        "plain = [faults() for _ in range(3)][-1]\n"
        "assert reuse_freed_memory() and reuse_freed_memory()\n"
        "reused = [faults() for _ in range(8)][-1]  # once the heap has grown to the step's needs\n"
        "print(plain, reused)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    plain, reused = map(int, out.stdout.split())
    assert plain > 10000  # 64 MB in 4 KB pages, faulted in afresh
    assert reused < 100


@pytest.mark.parametrize('shared', [0, 8])
def test_a_full_graph_gnn_step_on_the_cut_neighbourhood_equals_the_whole_graph(small, shared,
                                                                              monkeypatch):
    # the step's graph is cut to the exact neighbourhood of the entities it reads (the
    # generator's to the positives'): the same losses and gradients, fewer nodes per pass
    from native_pyg.nn.comat import generator_loss
    from native_pyg.training import trainer as trainer_module
    from native_pyg.training.step_graph import step_graph
    from tests.conftest import gnn_run_config
    run = gnn_run_config('rgcn', batch_size=32, shared_negatives=shared, mu=0.1)
    run = run.override(['model.num_layers=2', 'model.num_bases=2'])
    trainer = Trainer(build_model(small, run), small, run)
    trainer.model.double()
    trainer.generator.double()
    batch = next(iter(trainer.steps))
    nodes = []
    trainer.model.structural_encoder.register_forward_pre_hook(
        lambda mod, args: nodes.append(args[0].size(0)))
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    gen_params = list(trainer.generator.parameters())

    def losses_and_gradients():
        nodes.clear()
        torch.manual_seed(0)
        loss, _ = trainer._model_loss(batch, None)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with trainer_module.neighbourhood_graph(trainer.model, batch, None,
                                                (batch.pos[:, 0], batch.pos[:, 2])):
            g_loss = generator_loss(trainer.model, trainer.generator, *batch.pos.unbind(1))
        return (loss, g_loss, *grads, *torch.autograd.grad(g_loss, gen_params)), list(nodes)

    cut, cut_nodes = losses_and_gradients()
    monkeypatch.setattr(trainer_module, 'neighbourhood_graph',
                        lambda model, b, hidden, entities: step_graph(model, b, hidden))
    whole, whole_nodes = losses_and_gradients()
    for a, b in zip(cut, whole):
        if a is None:
            assert b is None
            continue
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # the encoder's input rows: the step's pass, then the generator's
    assert whole_nodes == [300, 300]
    read = torch.unique(torch.cat([batch.pos[:, 0], batch.pos[:, 2], batch.neg.flatten()]))
    assert read.numel() <= cut_nodes[0] <= 300 and cut_nodes[1] < cut_nodes[0]
    if shared:
        assert cut_nodes[0] < 300
