"""Nothing in a processed cache ever executes: PyG's fallback to a full
unpickle of ``processed/*.pt`` is never taken (issue 39)."""
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from native_pyg.cli import main
from native_pyg.datasets import FolderMMKG, MMKGDataset, SyntheticMMKG
from tests.conftest import REPO


class Payload:
    """Unpickling it creates the file ``marker`` (what any code could do)."""
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def folder(tmp_path) -> Path:
    dst = tmp_path / 'kg'
    shutil.copytree(REPO / 'examples' / 'my_mmkg', dst,
                    ignore=shutil.ignore_patterns('processed'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        FolderMMKG(str(dst), log=False)  # builds processed/
    return dst


def test_the_payload_runs_when_fully_unpickled(tmp_path):
    # the threat is real: a plain torch.load of such a file runs it
    path, marker = tmp_path / 'p.pt', tmp_path / 'ran'
    torch.save(Payload(marker), path)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize('target', ['pre_transform.pt', 'pre_filter.pt', 'cache'])
def test_payload_in_processed_folder_is_refused_not_run(tmp_path, target):
    kg = folder(tmp_path)
    processed = kg / 'processed'
    if target == 'cache':
        (path,) = [p for p in processed.glob('mmkg_*.pt')]
    else:
        path = processed / target
    marker = tmp_path / 'ran'
    torch.save(Payload(marker), path)
    with pytest.raises(ValueError) as e:
        FolderMMKG(str(kg), log=False)
    msg = str(e.value)
    assert '\n' not in msg and str(path) in msg and 'never loaded' in msg
    assert not marker.exists()


def test_cli_stats_on_a_folder_with_a_payload(tmp_path, capsys):
    kg = folder(tmp_path)
    marker = tmp_path / 'ran'
    torch.save(Payload(marker), kg / 'processed' / 'pre_transform.pt')
    assert main(['stats', '--dataset', str(kg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pre_transform.pt' in err[0] and 'Processing' not in err[0]
    assert not marker.exists()


def test_cache_of_the_wrong_shape_and_garbage_are_one_line(tmp_path):
    kg = folder(tmp_path)
    (path,) = list((kg / 'processed').glob('mmkg_*.pt'))
    torch.save({'a': torch.zeros(2)}, path)  # safe, but not a cache
    with pytest.raises(ValueError, match='not a processed dataset cache'):
        FolderMMKG(str(kg), log=False)
    path.write_bytes(b'not a torch file at all')
    with pytest.raises(ValueError, match='delete .*processed to rebuild'):
        FolderMMKG(str(kg), log=False)


def test_clean_cache_still_loads_and_records_are_kept(tmp_path):
    kg = folder(tmp_path)
    ds = FolderMMKG(str(kg), log=False)
    assert ds[0]['entity'].num_nodes == 40
    assert torch.load(kg / 'processed' / 'pre_transform.pt', weights_only=True) == 'None'
    root = tmp_path / 'synthetic'
    a = SyntheticMMKG(str(root), num_entities=60)[0]
    b = SyntheticMMKG(str(root), num_entities=60)[0]  # from the cache
    assert a.edge_types == b.edge_types
    assert all(torch.equal(a[t].edge_index, b[t].edge_index) for t in a.edge_types)


def test_an_openke_dataset_root_with_a_payload_is_refused(tiny_raw, tmp_path):
    # the path of 'evaluate --root ROOT' and of the WildKGC classes
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        MMKGDataset(str(tiny_raw.parent), log=False)
    marker = tmp_path / 'ran'
    torch.save(Payload(marker), tiny_raw.parent / 'processed' / 'pre_filter.pt')
    with pytest.raises(ValueError, match='pre_filter.pt: not a record of PyG'):
        MMKGDataset(str(tiny_raw.parent), log=False)
    assert not marker.exists()
