import math

import pytest
import torch

from native_pyg.data.schema import build_mmkg, split_triples, validate_mmkg
from native_pyg.data.transforms import EntityMissing, ModalityMissing

N = 4000
SPLITS = ('train', 'valid', 'test')


def graph():
    gen = torch.Generator().manual_seed(0)
    triples = torch.stack([torch.randint(0, N, (500, ), generator=gen),
                           torch.randint(0, 5, (500, ), generator=gen),
                           torch.randint(0, N, (500, ), generator=gen)], 1)
    features = {
        'image': torch.randn(N, 8, generator=gen) + 5,  # never zero
        'text': torch.randn(N, 4, generator=gen) + 5,
        'audio': torch.randn(N, 3, generator=gen) + 5,
    }
    masks = {
        'image': torch.rand(N, generator=gen) < 0.8,
        'text': torch.ones(N, dtype=torch.bool),
        'audio': torch.rand(N, generator=gen) < 0.3,
    }
    return build_mmkg(N, 5, triples[:400], triples[400:450], triples[450:],
                      features=features, masks=masks)


def snapshot(data):
    return ({m: (data[m].x.clone(), data[m].mask.clone()) for m in ('image', 'text', 'audio')},
            {s: split_triples(data, s).clone() for s in SPLITS})


def assert_consistent(before, after):
    """Masks only lose entities, kept rows are unchanged, dropped rows are zero,
    triples are untouched and the schema holds."""
    validate_mmkg(after)
    feats, triples = snapshot(before)
    for m, (x, mask) in feats.items():
        assert not (after[m].mask & ~mask).any()
        kept = after[m].mask
        assert torch.equal(after[m].x[kept], x[kept])
        assert (after[m].x[~kept] == 0).all()
    for s in SPLITS:
        assert torch.equal(split_triples(after, s), triples[s])


def assert_unchanged(data, snap):
    feats, triples = snapshot(data)
    for m, (x, mask) in snap[0].items():
        assert torch.equal(feats[m][0], x) and torch.equal(feats[m][1], mask)
    for s in SPLITS:
        assert torch.equal(triples[s], snap[1][s])


@pytest.mark.parametrize('rate', [0.1, 0.5, 0.9])
def test_entity_missing_removes_all_modalities_of_chosen_entities(rate):
    data = graph()
    snap = snapshot(data)
    out = EntityMissing(rate, seed=1)(data)
    assert_unchanged(data, snap)
    assert_consistent(data, out)
    removed = ~out['text'].mask  # every entity had text before
    assert int(removed.sum()) == round(rate * N)
    for m in ('image', 'audio'):
        assert torch.equal(out[m].mask, data[m].mask & ~removed)


def test_entity_missing_determinism():
    data = graph()
    a, b = EntityMissing(0.4, seed=7)(data), EntityMissing(0.4, seed=7)(data)
    c = EntityMissing(0.4, seed=8)(data)
    assert torch.equal(a['text'].mask, b['text'].mask)
    assert not torch.equal(a['text'].mask, c['text'].mask)


@pytest.mark.parametrize('rate', [0.1, 0.5, 0.9])
def test_modality_missing_rate(rate):
    data = graph()
    snap = snapshot(data)
    out = ModalityMissing(rate, seed=3)(data)
    assert_unchanged(data, snap)
    assert_consistent(data, out)
    dropped = {}
    for m in ('image', 'text', 'audio'):
        had = data[m].mask
        dropped[m] = had & ~out[m].mask
        frac = float(dropped[m][had].float().mean())
        sd = math.sqrt(rate * (1 - rate) / int(had.sum()))
        assert abs(frac - rate) < 5 * sd
    # independent across modalities: P(image and text dropped) = rate^2
    had_both = data["image"].mask & data["text"].mask
    both = (dropped['image'] & dropped['text'])[had_both].float().mean()
    sd = math.sqrt(rate**2 * (1 - rate**2) / int(had_both.sum()))
    assert abs(float(both) - rate**2) < 5 * sd


def test_modality_missing_selected_modalities():
    data = graph()
    full = ModalityMissing(0.5, seed=2)(data)
    only = ModalityMissing(0.5, modalities=['image'], seed=2)(data)
    assert_consistent(data, only)
    assert torch.equal(only['text'].mask, data['text'].mask)
    assert torch.equal(only['audio'].x, data['audio'].x)
    # one modality's pattern does not depend on the selection
    assert torch.equal(only['image'].mask, full['image'].mask)


def test_modality_missing_determinism():
    data = graph()
    a, b = ModalityMissing(0.3, seed=5)(data), ModalityMissing(0.3, seed=5)(data)
    c = ModalityMissing(0.3, seed=6)(data)
    for m in ('image', 'text', 'audio'):
        assert torch.equal(a[m].mask, b[m].mask) and torch.equal(a[m].x, b[m].x)
    assert not torch.equal(a['text'].mask, c['text'].mask)


@pytest.mark.parametrize('transform', [EntityMissing, ModalityMissing])
def test_extreme_rates(transform):
    data = graph()
    none = transform(0.0)(data)
    for m in ('image', 'text', 'audio'):
        assert torch.equal(none[m].mask, data[m].mask)
    everything = transform(1.0)(data)
    for m in ('image', 'text', 'audio'):
        assert not everything[m].mask.any() and (everything[m].x == 0).all()


@pytest.mark.parametrize('transform', [EntityMissing, ModalityMissing])
@pytest.mark.parametrize('rate', [-0.1, 1.5, float('nan')])
def test_bad_rate(transform, rate):
    with pytest.raises(ValueError, match='rate'):
        transform(rate)


def test_unknown_modality():
    with pytest.raises(ValueError, match="video"):
        ModalityMissing(0.2, modalities=['image', 'video'])(graph())


def test_repr():
    assert repr(EntityMissing(0.3, seed=2)) == 'EntityMissing(rate=0.3, seed=2)'
    assert repr(ModalityMissing(0.2, modalities=['image'])) == \
        "ModalityMissing(rate=0.2, modalities=['image'], seed=0)"
