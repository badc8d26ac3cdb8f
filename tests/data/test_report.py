import json
import os

import pytest
import torch

from native_pyg.data.report import (
    MMKGReport,
    _triple_ids,
    clean_splits,
    quirk_counts,
    report,
)
from native_pyg.data.schema import build_mmkg, split_triples, validate_mmkg

WILDKGC = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'wildkgc')


def small_graph():
    # 6 entities, 4 relations; entity 5 never occurs in train.
    train = [(0, 0, 1), (0, 0, 2), (0, 0, 1),  # one duplicate row
             (1, 1, 3), (2, 1, 3),
             (3, 2, 4),
             (0, 3, 4), (1, 3, 4)]
    valid = [(0, 0, 1), (0, 0, 1),  # in train, and a duplicate within valid
             (3, 2, 4),             # in train
             (4, 2, 5),             # unseen entity 5
             (1, 1, 2)]
    test = [(1, 1, 2),              # in valid, not in train
            (5, 0, 0),              # unseen entity 5
            (0, 0, 2), (2, 1, 3)]   # in train
    image = torch.zeros(6, 3)
    image[[0, 1, 2]] = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    text = torch.zeros(6, 2)
    text[[1, 3]] = 1.0
    data = build_mmkg(6, 4, torch.tensor(train), torch.tensor(valid), torch.tensor(test),
                      features={'image': image, 'text': text})
    data.name = 'toy'
    return data


def test_quirk_counts_small_graph():
    q = quirk_counts(small_graph())
    assert q['duplicates'] == {'train': 1, 'valid': 1, 'test': 0}
    assert q['leakage'] == {'valid': 3, 'test': 2}
    assert q['unseen_entity_rows'] == {'valid': 1, 'test': 1}
    assert q['test_in_valid'] == {'test': 1}


def test_report_fields(capsys):
    rep = report(small_graph(), verbose=False)
    assert capsys.readouterr().out == ''
    assert rep.name == 'toy'
    assert (rep.num_entities, rep.num_relations) == (6, 4)
    assert rep.rows == {'train': 8, 'valid': 5, 'test': 4}
    assert rep.duplicates == {'train': 1, 'valid': 1, 'test': 0}
    assert rep.leakage == {'valid': 3, 'test': 2}
    assert rep.unseen_entity_rows == {'valid': 1, 'test': 1}
    assert rep.coverage['image'].count == 3 and rep.coverage['image'].dim == 3
    assert rep.coverage['image'].fraction == pytest.approx(0.5)
    assert rep.coverage['text'].count == 2 and rep.coverage['text'].dim == 2
    assert rep.no_modality == 2  # entities 4 and 5
    # Unique triples of all splits, per relation (pairs / distinct heads, tails):
    # r0: (0,1) (0,2) (5,0)  -> tph 3/2 = 1.5, hpt 3/3 = 1   -> 1-N
    # r1: (1,3) (2,3) (1,2)  -> tph 3/2 = 1.5, hpt 3/2 = 1.5 -> N-N
    # r2: (3,4) (4,5)        -> tph 1,         hpt 1         -> 1-1
    # r3: (0,4) (1,4)        -> tph 1,         hpt 2         -> N-1
    assert rep.relation_categories == {'1-1': 1, '1-N': 1, 'N-1': 1, 'N-N': 1}


def test_report_str_dict_and_plot(tmp_path, capsys):
    rep = report(small_graph(), verbose=True)
    text = capsys.readouterr().out
    assert text.strip() == str(rep).strip()
    assert 'toy' in text and 'image' in text and 'no feature modality' in text
    d = json.loads(json.dumps(rep.to_dict()))
    assert d['leakage'] == rep.leakage
    assert d['coverage']['text']['count'] == 2
    path = rep.plot_coverage(tmp_path / 'coverage.png')
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_report_without_modalities_or_name():
    data = small_graph()
    plain = build_mmkg(6, 4, *(split_triples(data, s) for s in ('train', 'valid', 'test')))
    rep = report(plain, verbose=False)
    assert rep.name is None and rep.coverage == {} and rep.no_modality == 6
    assert isinstance(rep, MMKGReport) and 'MMKG report' in str(rep)


def naive_counts(data):
    t = {s: [tuple(r) for r in split_triples(data, s).tolist()] for s in ('train', 'valid', 'test')}
    train_set, valid_set = set(t['train']), set(t['valid'])
    seen = {e for h, _, tl in t['train'] for e in (h, tl)}
    return {
        'duplicates': {s: len(rows) - len(set(rows)) for s, rows in t.items()},
        'leakage': {s: sum(r in train_set for r in t[s]) for s in ('valid', 'test')},
        'unseen_entity_rows': {s: sum(h not in seen or tl not in seen for h, _, tl in t[s])
                               for s in ('valid', 'test')},
        'test_in_valid': {'test': sum(r in valid_set for r in t['test'])},
    }


def random_graph(seed, n=40, r=3):
    gen = torch.Generator().manual_seed(seed)
    def rows(k, hi=n):
        return torch.stack([torch.randint(0, hi, (k, ), generator=gen),
                            torch.randint(0, r, (k, ), generator=gen),
                            torch.randint(0, hi, (k, ), generator=gen)], 1)
    # a narrow entity range in train makes duplicates, leakage and unseen entities
    return build_mmkg(n, r, rows(300, hi=20), rows(120, hi=25), rows(120, hi=25))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_quirk_counts_match_naive(seed):
    data = random_graph(seed)
    q = quirk_counts(data)
    assert q == naive_counts(data)
    assert q['duplicates']['train'] > 0 and q['leakage']['valid'] > 0
    assert q['unseen_entity_rows']['test'] > 0


def test_triple_ids_fallback_without_overflow():
    big = 2**40  # N * N * R would overflow an int64 key
    a = torch.tensor([[big, 0, 1], [1, 2, big], [big, 0, 1]])
    b = torch.tensor([[1, 2, big], [0, 0, 0]])
    ia, ib = _triple_ids([a, b])
    assert ia[0] == ia[2] and ia[1] == ib[0]
    assert len({*ia.tolist(), *ib.tolist()}) == 3


@pytest.mark.parametrize('dedupe,remove_leakage', [(True, True), (True, False),
                                                   (False, True), (False, False)])
def test_clean_splits(dedupe, remove_leakage):
    data = random_graph(3)
    before = {s: split_triples(data, s).clone() for s in ('train', 'valid', 'test')}
    out = clean_splits(data, dedupe=dedupe, remove_leakage=remove_leakage)
    validate_mmkg(out)
    train = [tuple(r) for r in before['train'].tolist()]
    valid = [tuple(r) for r in before['valid'].tolist()]
    for s in ('train', 'valid', 'test'):
        assert torch.equal(split_triples(data, s), before[s])  # input untouched
        expected, seen = [], set()
        banned = set()
        if remove_leakage and s != 'train':
            banned = set(train) | (set(valid) if s == 'test' else set())
        for row in map(tuple, before[s].tolist()):
            if (dedupe and row in seen) or row in banned:
                continue
            seen.add(row)
            expected.append(row)
        assert [tuple(r) for r in split_triples(out, s).tolist()] == expected
    q = quirk_counts(out)
    if dedupe:
        assert all(v == 0 for v in q['duplicates'].values())
    if remove_leakage:
        assert q['leakage'] == {'valid': 0, 'test': 0} and q['test_in_valid']['test'] == 0


def test_clean_splits_keeps_features():
    data = small_graph()
    out = clean_splits(data, dedupe=True, remove_leakage=True)
    assert out['image'].x is data['image'].x and out['text'].mask is data['text'].mask
    assert out.name == 'toy' and out['entity'].name == data['entity'].name
    assert split_triples(data, 'valid').size(0) == 5  # the input keeps its rows
    assert split_triples(out, 'valid').tolist() == [[4, 2, 5], [1, 1, 2]]
    assert split_triples(out, 'test').tolist() == [[5, 0, 0]]


def _read_openke(path):
    with open(path) as f:
        f.readline()
        t = torch.tensor([[int(v) for v in line.split()] for line in f if line.strip()])
    return t[:, [0, 2, 1]]  # files are (h, t, r)


@pytest.mark.parametrize('name,split,duplicates,leakage', [
    ('DB15K', 'valid', 2423, 8719),
    ('TIVA', 'test', None, 1666),
])
def test_real_quirks(name, split, duplicates, leakage):
    root = os.path.join(WILDKGC, name)
    if not os.path.isdir(root):
        pytest.skip('real dataset files not available')
    with open(os.path.join(root, 'entity2id.txt')) as f:
        n = int(f.readline())
    with open(os.path.join(root, 'relation2id.txt')) as f:
        r = int(f.readline())
    t = [_read_openke(os.path.join(root, f'{s}2id.txt')) for s in ('train', 'valid', 'test')]
    q = quirk_counts(build_mmkg(n, r, *t))
    if duplicates is not None:
        assert q['duplicates'][split] == duplicates
    assert q['leakage'][split] == leakage
    if name == 'TIVA':
        assert q['duplicates']['train'] == 8419
