import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
#: the reference copy of the real WildKGC triples (never committed here)
SHARED = Path(os.environ.get('NATIVE_PYG_SHARED', REPO.parent / 'shared')) / 'wildkgc'
DIRS = {'DB15K': 'DB15K', 'MKG-W': 'MKG-W', 'MKG-Y': 'MKG-Y', 'TIVA': 'TIVA',
        'KVC16K': 'Kuai16K'}

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f'real WildKGC triples not found at {SHARED} (../shared absent)')


def fill_wildkgc_root(root: Path, name: str) -> Path:
    """Copies the released triples of ``name`` to ``root/<name>/raw``."""
    raw = root / name / 'raw'
    raw.mkdir(parents=True, exist_ok=True)
    for f in ('entity2id.txt', 'relation2id.txt', 'train2id.txt', 'valid2id.txt',
              'test2id.txt'):
        shutil.copy(SHARED / DIRS[name] / f, raw / f)
    return root


def write_openke(raw: Path, entities, relations, splits, sep='\t'):
    """Writes a small OpenKE dataset; ``splits`` maps split -> list of (h, r, t)."""
    raw.mkdir(parents=True, exist_ok=True)
    for fname, names in (('entity2id.txt', entities), ('relation2id.txt', relations)):
        rows = [f'{n}{sep}{i}' for i, n in enumerate(names)]
        (raw / fname).write_text('\n'.join([str(len(rows)), *rows]) + '\n')
    for split in ('train', 'valid', 'test'):
        rows = [f'{h} {t} {r}' for h, r, t in splits[split]]
        (raw / f'{split}2id.txt').write_text('\n'.join([str(len(rows)), *rows]) + '\n')


@pytest.fixture
def tiny_raw(tmp_path):
    """A 6-entity, 2-relation OpenKE dataset under ``tmp_path/tiny/raw``."""
    raw = tmp_path / 'tiny' / 'raw'
    write_openke(raw, [f'e{i}' for i in range(6)], ['likes', 'knows'], {
        'train': [(0, 0, 1), (1, 0, 2), (2, 1, 3), (3, 1, 4), (0, 0, 1)],
        'valid': [(4, 0, 5), (0, 0, 1)],
        'test': [(1, 1, 3)],
    })
    return raw


@pytest.fixture
def one_thread():
    """One CPU thread for the test: multi-threaded reductions may sum in another order
    from run to run (differences around 1e-7); bit-exact comparisons need one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- a small graph and run settings for the GNN-encoder tests --------------------------
@pytest.fixture(scope='module')
def gnn_small():
    """A 200-entity synthetic MMKG with 4 relations."""
    from native_pyg.datasets import SyntheticMMKG
    return SyntheticMMKG(seed=2, num_entities=200, num_relations=4)[0]


def gnn_steps(data, batch_size=64, num_negatives=4, seed=0):
    """Plain triple batches over the deduplicated training triples."""
    from native_pyg.data import split_triples
    from native_pyg.training import BernoulliNegativeSampler
    from native_pyg.training.batching import TripleBatches
    triples = torch.unique(split_triples(data, 'train'), dim=0)
    sampler = BernoulliNegativeSampler(triples, data['entity'].num_nodes, data.num_relations,
                                       num_negatives, seed=seed)
    return TripleBatches(triples, batch_size, sampler, torch.Generator().manual_seed(seed))


def small_run(**training):
    """A fast run config on the embedding table; ``training`` overrides keys."""
    from native_pyg.training import RunConfig
    run = RunConfig().override(['model.hidden_channels=8', 'model.margin=6.0',
                                'training.batch_size=256', 'training.num_negatives=8',
                                'training.progress=false', 'training.eval_every=0',
                                'training.lr=0.01'])
    for k, v in training.items():
        setattr(run.training, k, v)
    return run


def gnn_run_config(encoder, **training):
    """A fast run config with a 1-layer ``encoder``; ``training`` overrides keys."""
    from native_pyg.training import RunConfig
    run = RunConfig().override([
        'model.hidden_channels=8', 'model.margin=6.0', f'model.encoder={encoder}',
        'model.num_layers=1', 'training.batch_size=128', 'training.num_negatives=8',
        'training.progress=false', 'training.eval_every=0', 'training.lr=0.01'])
    for k, v in training.items():
        setattr(run.training, k, v)
    return run
