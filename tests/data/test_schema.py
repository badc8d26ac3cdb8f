import pytest
import torch

from native_pyg.data import REL, SchemaError, build_mmkg, modalities, split_triples, validate_mmkg


def make(**kw):
    args = dict(num_entities=4, num_relations=2,
                train=torch.tensor([[0, 0, 1], [1, 1, 2]]),
                valid=torch.tensor([[2, 0, 3]]), test=torch.tensor([[3, 1, 0]]),
                features={'image': torch.tensor([[1., 2.], [0., 0.], [3., 4.], [5., 6.]]),
                          'audio': torch.ones(4, 3)},
                masks={'audio': torch.tensor([True, False, True, False])})
    args.update(kw)
    return build_mmkg(**args)


def test_build_layout():
    data = make()
    assert data['entity'].num_nodes == 4 and data['entity'].name == ['0', '1', '2', '3']
    assert data[REL].edge_index.tolist() == [[0, 1], [1, 2]]
    assert data[REL].edge_type.tolist() == [0, 1]
    assert data[REL].val_edge_index.tolist() == [[2], [3]]
    assert data[REL].test_edge_type.tolist() == [1]
    assert split_triples(data, 'test').tolist() == [[3, 1, 0]]
    # default mask = non-zero rows; explicit mask zeroes the rows it drops
    assert data['image'].mask.tolist() == [True, False, True, True]
    assert data['audio'].x[1].abs().sum() == 0 and data['audio'].x[0].sum() == 3
    assert modalities(data) == ['image', 'audio']
    # read through the feature-store API too
    x = data.get_tensor(group_name='image', attr_name='x', index=torch.tensor([2]))
    assert x.tolist() == [[3., 4.]]


def breakers():
    def set_(path, value):
        def f(d):
            store = d[path[0]] if path[0] != '' else d
            setattr(store, path[1], value)
        return f
    return {
        'num_nodes': (set_(('entity', 'num_nodes'), 0), 'num_nodes'),
        'names': (set_(('entity', 'name'), ['a']), "data['entity'].name"),
        'num_relations': (set_(('', 'num_relations'), 0), 'num_relations'),
        'relation_names': (set_(('', 'relation_names'), ['x']), 'relation_names'),
        'edge_dtype': (lambda d: setattr(d[REL], 'edge_index', d[REL].edge_index.int()),
                       'torch.long'),
        'edge_shape': (lambda d: setattr(d[REL], 'edge_index', torch.zeros(3, 2).long()),
                       'shape [2, E]'),
        'type_len': (lambda d: setattr(d[REL], 'edge_type', torch.zeros(5).long()),
                     '.edge_type must have shape'),
        'entity_range': (lambda d: setattr(d[REL], 'val_edge_index', torch.tensor([[0], [9]])),
                         'val_edge_index has entity ids outside'),
        'negative_id': (lambda d: setattr(d[REL], 'test_edge_index', torch.tensor([[-1], [0]])),
                        'test_edge_index has entity ids outside'),
        'relation_range': (lambda d: setattr(d[REL], 'edge_type', torch.tensor([0, 7])),
                           'relation ids outside'),
        'missing_split': (lambda d: delattr(d[REL], 'test_edge_type'), 'missing test edges'),
        'empty_train': (lambda d: (setattr(d[REL], 'edge_index', torch.zeros(2, 0).long()),
                                   setattr(d[REL], 'edge_type', torch.zeros(0).long())),
                        'training split is empty'),
        'x_rows': (lambda d: setattr(d['image'], 'x', torch.ones(3, 2)), "data['image'].x must have shape"),
        'x_dtype': (lambda d: setattr(d['image'], 'x', torch.ones(4, 2).long()), 'floating point'),
        'mask_dtype': (lambda d: setattr(d['image'], 'mask', torch.ones(4)), "mask must be a bool"),
        'mask_shape': (lambda d: setattr(d['image'], 'mask', torch.ones(5).bool()), "mask must be a bool"),
        'nan': (lambda d: d['image'].x.__setitem__((0, 0), float('nan')), 'NaN'),
        'unmasked_row': (lambda d: d['image'].x.__setitem__((1, 0), 1.0), 'non-zero rows where'),
        'no_mask': (lambda d: delattr(d['audio'], 'mask'), "needs both .x and .mask"),
    }


@pytest.mark.parametrize('case', sorted(breakers()))
def test_validate_names_each_violation(case):
    data = make()
    validate_mmkg(data)
    breaker, message = breakers()[case]
    breaker(data)
    with pytest.raises(SchemaError, match=message.replace('[', r'\[').replace('.', r'\.')):
        validate_mmkg(data)


def test_build_rejects_bad_inputs():
    with pytest.raises(SchemaError, match=r'\[E, 3\]'):
        make(train=torch.tensor([[0, 1]]))
    with pytest.raises(SchemaError, match='2-D'):
        make(features={'image': torch.ones(4)}, masks=None)
    with pytest.raises(SchemaError, match='without features'):
        make(features={}, masks={'video': torch.ones(4).bool()})
    with pytest.raises(SchemaError, match='reserved'):
        make(features={'entity': torch.ones(4, 2)}, masks=None)
