import pytest
import torch

from native_pyg.data import MMKGFormatError, read_feature_file, read_id_map, read_openke, read_triples
from native_pyg.data.readers import (load_array, read_mask_file, read_name_list, read_text,
                                     read_tsv_triples)
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
    with pytest.raises(MMKGFormatError, match='evil.pth: not a tensor file'):
        read_feature_file(str(path), 4)


# --- UTF-8, TSV of names, name lists, masks and .npy features --------------------------


@pytest.mark.parametrize('content, line, column', [
    (b'2\na\t0\nZo\xe9\t1\n', 3, 3),
    (b'\xef\xbb\xbf1\n\xe9t\xe9\t0\n', 2, 1),  # a BOM does not shift the column
    (b'\xe9\n', 1, 1),
    (b'1\nna\xc3\xafve \xff\t0\n', 2, 7),  # columns count characters, not bytes
])
def test_non_utf8_names_file_line_and_column(tmp_path, content, line, column):
    path = tmp_path / 'entity2id.txt'
    path.write_bytes(content)
    for read in (read_id_map, read_text):
        with pytest.raises(MMKGFormatError) as e:
            read(str(path))
        msg = str(e.value)
        assert msg.startswith(f'{path}:{line}: not UTF-8 text (byte 0x')
        assert f'at column {column})' in msg and '\n' not in msg
    assert isinstance(e.value, ValueError)


def test_non_utf8_split_file(tmp_path):
    path = tmp_path / 'train2id.txt'
    path.write_bytes(b'1\n0 1 0\xe9\n')
    with pytest.raises(MMKGFormatError, match=r'train2id.txt:2: not UTF-8 text \(byte 0xe9 '
                                              r'at column 6\)'):
        read_triples(str(path), 3, 2)


def test_crlf_and_bom_are_not_part_of_names(tmp_path):
    path = tmp_path / 'entities.txt'
    path.write_bytes(b'\xef\xbb\xbfalice\r\n\r\n bob smith \r\n')
    assert read_name_list(str(path)) == ['alice', 'bob smith']


def test_read_tsv_triples_first_seen_ids(tmp_path):
    path = tmp_path / 'train.tsv'
    path.write_text('a b\tr 1\tc\r\n\nc\tr2\ta b\n')
    ents, rels = {}, {}
    t = read_tsv_triples(str(path), ents, rels)
    assert t.tolist() == [[0, 0, 1], [1, 1, 0]]
    assert list(ents) == ['a b', 'c'] and list(rels) == ['r 1', 'r2']
    with pytest.raises(MMKGFormatError, match=r"train.tsv:1: unknown relation 'r 1' "
                                              r"\(not in relations.txt\)"):
        read_tsv_triples(str(path), dict(ents), {'r2': 0}, relations_from='relations.txt')


@pytest.mark.parametrize('content, line, message', [
    ('a\tr\tb\na\tr\n', 2, 'expected 3 tab-separated fields'),
    ('a\tr\tb\tc\n', 1, 'got 4'),
    ('a\t\tb\n', 1, 'the relation field is empty'),
    ('a r b\n', 1, 'this line has none'),
    ('\n\n', None, 'split is empty'),
])
def test_read_tsv_triples_errors(tmp_path, content, line, message):
    path = tmp_path / 'valid.tsv'
    path.write_text(content)
    with pytest.raises(MMKGFormatError, match=message) as e:
        read_tsv_triples(str(path), {}, {})
    assert str(e.value).startswith(f'{path}:{line}:' if line else f'{path}:')


@pytest.mark.parametrize('content, line, message', [
    ('a\nb\na\n', 3, r"'a' is listed twice \(first on line 1\)"),
    ('a\t0\n', 1, 'got a tab'),
    ('\n', None, 'file is empty'),
])
def test_read_name_list_errors(tmp_path, content, line, message):
    path = tmp_path / 'entities.txt'
    path.write_text(content)
    with pytest.raises(MMKGFormatError, match=message) as e:
        read_name_list(str(path))
    assert str(e.value).startswith(f'{path}:{line}:' if line else f'{path}:')


def test_npy_features_masks_and_dtype(tmp_path):
    np = pytest.importorskip('numpy')
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / 'f.npy', x)
    got, mask = read_feature_file(str(tmp_path / 'f.npy'), 4)
    assert got.dtype == torch.float32 and mask.tolist() == [True] * 4
    given = torch.tensor([True, False, True, False])
    got, mask = read_feature_file(str(tmp_path / 'f.npy'), 4, mask=given, dtype=torch.float16)
    assert got.dtype == torch.float16 and mask.tolist() == given.tolist()
    assert got[1].abs().sum() == 0 and float(got[2, 0]) == 6.0
    np.save(tmp_path / 'big.npy', np.full((4, 3), 1e5, dtype=np.float32))
    with pytest.raises(MMKGFormatError, match='beyond the range of torch.float16'):
        read_feature_file(str(tmp_path / 'big.npy'), 4, dtype=torch.float16)
    x[1, 1] = np.nan  # NaN outside the mask is just missing
    np.save(tmp_path / 'nan.npy', x)
    got, mask = read_feature_file(str(tmp_path / 'nan.npy'), 4, mask=given)
    assert mask.tolist() == given.tolist() and torch.isfinite(got).all()
    with pytest.raises(MMKGFormatError, match='1 rows hold NaN/Inf values'):
        read_feature_file(str(tmp_path / 'nan.npy'), 4)


def test_read_mask_file_formats(tmp_path):
    np = pytest.importorskip('numpy')
    names = ['a', 'b c', 'd']
    (tmp_path / 'm.txt').write_text('b c\n\nd\nd\n')
    assert read_mask_file(str(tmp_path / 'm.txt'), names).tolist() == [False, True, True]
    np.save(tmp_path / 'm.npy', np.array([[1], [0], [1]], dtype=np.uint8))
    assert read_mask_file(str(tmp_path / 'm.npy'), names).tolist() == [True, False, True]
    torch.save(torch.tensor([True, False]), tmp_path / 'm.pt')
    with pytest.raises(MMKGFormatError, match='m.pt: has 2 rows but the dataset has 3'):
        read_mask_file(str(tmp_path / 'm.pt'), names)
    (tmp_path / 'bad.txt').write_text('a\nx\n')
    with pytest.raises(MMKGFormatError, match=r"bad.txt:2: unknown entity 'x'"):
        read_mask_file(str(tmp_path / 'bad.txt'), names)


def test_load_array_rejects_pickled_npy(tmp_path):
    np = pytest.importorskip('numpy')
    np.save(tmp_path / 'o.npy', np.array([{'a': 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MMKGFormatError, match='allow_pickle=False'):
        load_array(str(tmp_path / 'o.npy'))
    with pytest.raises(MMKGFormatError, match='file not found'):
        load_array(str(tmp_path / 'missing.npy'))


@pytest.mark.parametrize('name, content', [('x.npy', b'garbage'), ('x.pt', b'garbage'),
                                           ('x.pth', b'')])
def test_unreadable_array_files_are_one_line_without_unsafe_advice(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(MMKGFormatError) as e:
        load_array(str(tmp_path / name))
    msg = str(e.value)
    assert msg.startswith(f'{tmp_path / name}: ') and ' read' in msg and '\n' not in msg
    assert 'weights_only=False' not in msg and 'allow_pickle=True' not in msg
    assert 'unsafe' not in msg


def test_hostile_names_and_counts_are_one_line_with_the_line(tmp_path):
    # issue 39: '²' is a digit to str.isdigit; NFD against NFC; a 2 MB name
    from native_pyg.data.readers import MMKGFormatError, read_id_map, read_tsv_triples
    (tmp_path / 'e.txt').write_text('\u00b2\nx\t0\n')
    with pytest.raises(MMKGFormatError, match=r"e.txt:1: expected the row count alone"):
        read_id_map(str(tmp_path / 'e.txt'))
    (tmp_path / 'e.txt').write_text('1\nx\t\u00b9\n')
    with pytest.raises(MMKGFormatError, match=r"e.txt:2: id '\u00b9' is not an integer"):
        read_id_map(str(tmp_path / 'e.txt'))
    nfc, nfd = 'Z\u00fcrich', 'Zu\u0308rich'
    (tmp_path / 'train.tsv').write_text(f'{nfd}\tr\t{nfc}\n')
    with pytest.raises(MMKGFormatError) as e:
        read_tsv_triples(str(tmp_path / 'train.tsv'), {nfc: 0}, {'r': 0}, 'entities.txt',
                         'relations.txt')
    assert 'train.tsv:1: unknown entity' in str(e.value)
    assert 'another Unicode normal form' in str(e.value)
    (tmp_path / 'train.tsv').write_text(f"{'y' * 2_000_000}\tr\t{nfc}\n")
    with pytest.raises(MMKGFormatError) as e:
        read_tsv_triples(str(tmp_path / 'train.tsv'), {nfc: 0}, {'r': 0}, 'entities.txt',
                         'relations.txt')
    assert len(str(e.value)) < 300 and "yyy...'" in str(e.value)


def test_a_directory_where_a_split_should_be_says_so(tmp_path):
    from native_pyg.datasets import find_layout
    from native_pyg.data.readers import MMKGFormatError
    (tmp_path / 'train.tsv').mkdir()
    for split in ('valid', 'test'):
        (tmp_path / f'{split}.tsv').write_text('a\tr\tb\n')
    with pytest.raises(MMKGFormatError, match='train.tsv is a directory, not a file'):
        find_layout(str(tmp_path))


def test_sparse_and_zero_width_feature_files_are_one_line(tmp_path):
    import numpy as np
    from native_pyg.data.readers import MMKGFormatError
    torch.save(torch.eye(40).to_sparse(), tmp_path / 'sparse.pt')
    np.save(tmp_path / 'empty.npy', np.zeros((40, 0), np.float32))
    with pytest.raises(MMKGFormatError, match=r'sparse.pt: expected a dense tensor'):
        read_feature_file(str(tmp_path / 'sparse.pt'), 40)
    with pytest.raises(MMKGFormatError, match=r'empty.npy: expected .* d >= 1, got shape \(40, 0\)'):
        read_feature_file(str(tmp_path / 'empty.npy'), 40)
