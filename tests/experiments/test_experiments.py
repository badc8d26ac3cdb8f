"""The paper's experiments as one command each."""
import json
import math

import pytest

import native_pyg.experiments as experiments
from native_pyg.datasets import SyntheticMMKG
from native_pyg.experiments import Budget, run_experiment, summarize

TINY = Budget(epochs=1, hidden_channels=4, num_negatives=2, batch_size=4096, eval_every=1)


@pytest.fixture(scope='module')
def small():
    return SyntheticMMKG(seed=2, num_entities=150, num_relations=4)[0]


def test_grids_cover_the_papers_tables():
    assert [v for v, _ in experiments.experiment_grid('main')] == experiments.MAIN
    missing = experiments.experiment_grid('missing')
    assert len(missing) == 2 * 4 * 3
    assert {s for _, s in missing} == {f'{k}-{r}' for k in ('entity', 'modality')
                                      for r in (0.2, 0.4, 0.6, 0.8)}
    assert len(experiments.experiment_grid('generality')) == 8
    assert 'random-missing' in [v for v, _ in experiments.experiment_grid('ablation')]
    with pytest.raises(ValueError, match='unknown experiment'):
        experiments.experiment_grid('nope')


def test_missing_settings_remove_what_they_say(small):
    stripped = experiments.setting_data(small, 'entity-0.6', seed=0)
    before = sum(int(small[m].mask.sum()) for m in ('image', 'text'))
    after = sum(int(stripped[m].mask.sum()) for m in ('image', 'text'))
    assert after < 0.6 * before and experiments.setting_data(small, 'full', 0) is small


def test_an_experiment_writes_its_outputs_and_resumes(small, tmp_path, monkeypatch):
    summary = run_experiment('ablation', small, str(tmp_path), budget=TINY, seeds=(0, 1),
                             progress=False, log=lambda s: None)
    assert [r['variant'] for r in summary['rows']] == [v for v, _ in experiments.experiment_grid('ablation')]
    for r in summary['rows']:
        assert r['seeds'] == 2 and 0 < r['realistic_mrr'][0] <= 1
        assert r['optimistic_mrr'][0] >= r['realistic_mrr'][0] - 1e-12
    for ext in ('json', 'md', 'png'):
        assert (tmp_path / f'ablation.{ext}').stat().st_size > 0
    assert '| full | NativE (ReDAF + CoMAT) |' in (tmp_path / 'ablation.md').read_text()
    assert len(list((tmp_path / 'cells').glob('*.json'))) == 10
    # a rerun redoes no finished cell; a lost cell is redone alone
    (tmp_path / 'cells' / 'mean__full__seed1.json').unlink()
    done = []
    real = experiments.run_cell
    monkeypatch.setattr(experiments, 'run_cell', lambda *a, **k: done.append(a[2:5]) or real(*a, **k))
    again = run_experiment('ablation', small, str(tmp_path), budget=TINY, seeds=(0, 1),
                           progress=False, log=lambda s: None)
    assert done == [('mean', 'full', 1)]
    assert json.loads((tmp_path / 'ablation.json').read_text())['rows'][0] == \
        json.loads(json.dumps(again['rows'][0]))


def test_summaries_are_mean_and_sample_std():
    rec = lambda seed, mrr: {'variant': 'native', 'setting': 'full', 'seed': seed,  # noqa: E731
                             'realistic': {'mrr': mrr, 'mr': 10.0, 'hits@1': 0.1, 'hits@10': 0.5},
                             'optimistic': {'mrr': mrr, 'mr': 9.0, 'hits@1': 0.1, 'hits@10': 0.5},
                             'seconds_per_epoch': 1.0, 'eval_seconds_realistic': 2.0,
                             'state_mb': 3.0, 'process_peak_rss_mb': 4.0}
    (row,) = summarize([rec(0, 0.2), rec(1, 0.4), rec(2, 0.6)], [('native', 'full')])
    assert row['realistic_mrr'][0] == pytest.approx(0.4)
    assert row['realistic_mrr'][1] == pytest.approx(math.sqrt(((0.2) ** 2 * 2) / 2))


def test_experiment_cli_errors_are_one_line(tmp_path, capsys):
    from native_pyg.cli import main
    assert main(['experiment', 'main', '--out', str(tmp_path), '--seeds', ',']) == 2
    assert '--seeds' in capsys.readouterr().err
    assert main(['experiment', 'main', '--out', str(tmp_path), '--epochs', '0']) == 2
    assert 'training.epochs: must be >= 1' in capsys.readouterr().err


def test_selection_and_shards_split_an_experiment(small, tmp_path, monkeypatch):
    grid = experiments.experiment_grid('missing')
    entity = experiments.select(grid, settings=['entity'])
    assert len(entity) == 12 and all(s.startswith('entity-') for _, s in entity)
    assert experiments.select(grid, ['mean'], ['modality-0.4']) == [('mean', 'modality-0.4')]
    with pytest.raises(ValueError, match='no cell'):
        experiments.select(grid, settings=['entiti'])
    done = []
    real = experiments.run_cell
    monkeypatch.setattr(experiments, 'run_cell', lambda *a, **k: done.append(a[2:5]) or real(*a, **k))
    kw = dict(budget=TINY, seeds=(0, 1), progress=False, log=lambda s: None,
              variants=['rotate', 'mean'])
    first = run_experiment('main', small, str(tmp_path), shard=(0, 2), **kw)
    assert done == [('rotate', 'full', 0), ('mean', 'full', 0)]
    assert [r['seeds'] for r in first['rows']] == [1, 1]
    second = run_experiment('main', small, str(tmp_path), shard=(1, 2), **kw)
    assert done[2:] == [('rotate', 'full', 1), ('mean', 'full', 1)]
    assert [r['seeds'] for r in second['rows']] == [2, 2]  # both shards' cells tabulated
    with pytest.raises(ValueError, match='shard'):
        run_experiment('main', small, str(tmp_path), shard=(2, 2), **kw)


def test_requests_and_budgets_are_checked_in_one_place(tmp_path):
    assert experiments.check_request('missing', ['mean'], ['modality-0.4'], (1, 2)) == \
        [('mean', 'modality-0.4')]
    for args, message in ((('nope',), 'unknown experiment'), (('main', ['x']), 'no cell'),
                          (('main', None, None, (2, 2)), 'shard 2/2')):
        with pytest.raises(ValueError, match=message):
            experiments.check_request(*args)
    assert experiments.recorded_budget(str(tmp_path)) is None
    experiments.check_budget(str(tmp_path), TINY)  # nothing recorded: any budget
    (tmp_path / 'budget.json').write_text(json.dumps(vars(TINY)))
    assert experiments.recorded_budget(str(tmp_path)) == TINY
    experiments.check_budget(str(tmp_path), TINY)
    with pytest.raises(ValueError, match='another budget'):
        experiments.check_budget(str(tmp_path), Budget(epochs=2))


def test_experiment_cli_selection_errors_are_one_line(tmp_path, capsys):
    from native_pyg.cli import main
    assert main(['experiment', 'main', '--out', str(tmp_path), '--variants', 'nope']) == 2
    assert 'no cell' in capsys.readouterr().err
    assert main(['experiment', 'main', '--out', str(tmp_path), '--shard', '3']) == 2
    assert '--shard' in capsys.readouterr().err


def test_no_train_tabulates_finished_cells(small, tmp_path, capsys):
    from native_pyg.cli import main
    assert main(['experiment', 'main', '--out', str(tmp_path), '--no-train']) == 2
    assert 'no finished cell' in capsys.readouterr().err
    run_experiment('main', small, str(tmp_path), budget=TINY, seeds=(0,), progress=False,
                   log=lambda s: None, variants=['transe'])
    (tmp_path / 'main.md').unlink()
    assert main(['experiment', 'main', '--out', str(tmp_path), '--no-train', '--seeds', '0,1']) == 0
    table = (tmp_path / 'main.md').read_text()
    assert '| full | TransE, structure only |' in table and 'RotatE' not in table


def test_a_changed_budget_never_mixes_with_kept_cells(small, tmp_path, capsys):
    from native_pyg.cli import main
    kw = dict(seeds=(0,), progress=False, log=lambda s: None, variants=['transe'])
    run_experiment('main', small, str(tmp_path), budget=TINY, **kw)
    with pytest.raises(ValueError, match='another budget'):
        run_experiment('main', small, str(tmp_path), budget=Budget(epochs=2, hidden_channels=4),
                       **kw)
    assert main(['experiment', 'main', '--out', str(tmp_path), '--epochs', '3']) == 2
    assert 'another budget' in capsys.readouterr().err
    assert json.loads((tmp_path / 'main.json').read_text())['budget']['epochs'] == 1


def test_cells_record_the_valid_curve_and_fusion_weights_by_presence(small, tmp_path):
    """What says *why* a fusion loses under missing features: each cell keeps
    its validation curve and the mean fusion weights of test entities with
    and without each modality."""
    from native_pyg.experiments import run_cell
    from native_pyg.evaluation import LinkPredictionEvaluator
    from native_pyg.config.run_config import RunConfig
    base = RunConfig().override(TINY.overrides() + ['training.epochs=2', 'training.progress=false'])
    evaluators = {'realistic': LinkPredictionEvaluator.from_data(small, ties='realistic')}
    record = run_cell(small, base, 'native-no-comat', 'entity-0.6', 0, evaluators)
    assert [e for e, _ in record['valid_curve']] == [1, 2]
    assert all(0 < mrr <= 1 for _, mrr in record['valid_curve'])
    weights = record['modality_weights']
    test = experiments._test(small)
    for modality in ('image', 'text'):
        present, missing = weights[f'{modality} present'], weights[f'{modality} missing']
        assert present['count'] + missing['count'] == 2 * test.size(0)
        assert missing[modality] == 0 and present[modality] > 0  # masked rows get no weight
        for group in (present, missing):  # a convex combination over the modalities
            assert sum(v for k, v in group.items() if k != 'count') == pytest.approx(1, abs=1e-3)
    rotate = run_cell(small, base, 'rotate', 'full', 0, evaluators)
    assert 'modality_weights' not in rotate  # structure only: nothing fused


def test_experiment_budget_takes_flags_then_the_config_then_built_ins(tmp_path):
    # issue 39: --config was overridden by the experiment's built-in budget
    from native_pyg.cli import build_parser
    from native_pyg.cli.options import base_config, given_keys
    from native_pyg.experiments import Budget
    config = tmp_path / 'c.yaml'
    config.write_text('model:\n  margin: 6.0\ntraining:\n  lr: 1.0e-2\n  batch_size: 512\n')
    args = build_parser().parse_args(['experiment', 'main', '--config', str(config), '--out',
                                      str(tmp_path / 'o'), '--batch-size', '256',
                                      '--set', 'training.num_negatives=8'])
    flags = dict(epochs=args.epochs, hidden_channels=args.dim, num_negatives=args.negatives,
                 lr=args.lr, batch_size=args.batch_size, eval_every=args.eval_every,
                 margin=args.margin)
    budget = Budget.resolve(flags, base_config(args), given_keys(args))
    assert budget == Budget(lr=1e-2, margin=6.0, batch_size=256, num_negatives=8)
    assert budget.epochs == 100 and budget.hidden_channels == 100  # neither gave them
