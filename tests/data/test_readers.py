import pytest
import torch

from native_pyg.data import MMKGFormatError, read_feature_file, read_id_map, read_openke, read_triples
from tests.conftest import write_openke


def test_read_openke_order_and_separators(tmp_path):
    raw = tmp_path / 'raw'
    write_openke(raw, ['organic compound', 'freon', 'c'], ['is a'],
                 {'train': [(0, 0, 1), (2, 0, 1)], 'valid': [(1, 0, 2)], 'test': [(0, 0, 2)]})
    kg = read_openke(str(raw))
    assert kg['entity_names'] == ['organic compound', 'freon', 'c']  # tab keeps spaces
    assert kg['relation_names'] == ['is a']
    # files hold "head tail relation"; tensors hold (head, relation, tail)
    assert kg['train'].tolist() == [[0, 0, 1], [2, 0, 1]]
    assert kg['valid'].dtype == torch.long
    write_openke(tmp_path / 'sp', ['a', 'b'], ['r'], {s: [(0, 0, 1)] for s in
                                                       ('train', 'valid', 'test')}, sep=' ')
    assert read_id_map(str(tmp_path / 'sp' / 'entity2id.txt')) == ['a', 'b']


@pytest.mark.parametrize('content, line, message', [
    ('2\n0 1 0\n1 x 0\n', 3, 'non-integer'),
    ('2\n0 1 0\n1 2\n', 3, 'expected 3 fields'),
    ('3\n0 1 0\n1 2 0\n', 1, 'header says 3 rows but the file has 2'),
    ('2\n0 1 0\n1 9 0\n', 3, 'entity id 9 is outside'),
    ('2\n-1 1 0\n1 2 0\n', 2, 'entity id -1 is outside'),
    ('2\n0 1 0\n1 2 5\n', 3, 'relation id 5 is outside'),
    ('0\n', None, 'split is empty'),
    ('two\n0 1 0\n', 1, 'row count'),
    ('', None, 'file is empty'),
])
def test_triples_errors_name_file_and_line(tmp_path, content, line, message):
    path = tmp_path / 'train2id.txt'
    path.write_text(content)
    where = f'{path}:{line}:' if line else f'{path}:'
    with pytest.raises(MMKGFormatError, match=message) as e:
        read_triples(str(path), num_entities=3, num_relations=2)
    assert str(e.value).startswith(where)


@pytest.mark.parametrize('content, line, message', [
    ('2\na\t0\nb\tx\n', 3, "id 'x' is not an integer"),
    ('2\na\t0\nb\t2\n', 3, 'outside'),
    ('2\na\t0\nb\t0\n', 3, 'used twice'),
    ('2\na\t0\nb\n', 3, 'expected'),
    ('1\na\t0\nb\t1\n', 1, 'header says 1'),
])
def test_id_map_errors(tmp_path, content, line, message):
    path = tmp_path / 'entity2id.txt'
    path.write_text(content)
    with pytest.raises(MMKGFormatError, match=message) as e:
        read_id_map(str(path))
    assert str(e.value).startswith(f'{path}:{line}:')


def test_missing_file(tmp_path):
    with pytest.raises(MMKGFormatError, match='file not found'):
        read_openke(str(tmp_path))


def test_feature_file_ok_and_missing_rows(tmp_path):
    x = torch.randn(4, 3)
    x[2] = 0
    torch.save(x, tmp_path / 'f.pth')
    got, mask = read_feature_file(str(tmp_path / 'f.pth'), 4)
    assert mask.tolist() == [True, True, False, True]
    assert torch.equal(got[mask], x[mask])
    _, mask = read_feature_file(str(tmp_path / 'f.pth'), 4, zero_rows_missing=False)
    assert bool(mask.all())


@pytest.mark.parametrize('value, message', [
    (torch.randn(5, 3), 'has 5 rows but the dataset has 4'),
    (torch.randn(4), '2-D'),
    (torch.ones(4, 3, dtype=torch.long), 'floating-point'),
    ({'x': torch.randn(4, 3)}, 'expected a tensor'),
])
def test_feature_file_errors(tmp_path, value, message):
    path = tmp_path / 'DB15K-visual.pth'
    torch.save(value, path)
    with pytest.raises(MMKGFormatError, match=message) as e:
        read_feature_file(str(path), 4)
    assert str(path) in str(e.value)


def test_feature_file_nan_rows(tmp_path):
    x = torch.randn(4, 3)
    x[1, 2] = float('nan')
    x[3, 0] = float('inf')
    torch.save(x, tmp_path / 'f.pth')
    with pytest.raises(MMKGFormatError, match='2 rows hold NaN/Inf.*first: row 1'):
        read_feature_file(str(tmp_path / 'f.pth'), 4)
    got, mask = read_feature_file(str(tmp_path / 'f.pth'), 4, nan_rows='missing')
    assert mask.tolist() == [True, False, True, False]
    assert torch.isfinite(got).all()


def test_feature_file_never_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    import pickle
    path = tmp_path / 'evil.pth'
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(MMKGFormatError, match='weights_only=True'):
        read_feature_file(str(path), 4)
