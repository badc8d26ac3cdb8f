import pytest
import torch

from native_pyg.evaluation import (PROTOCOLS, LinkPredictionEvaluator, Protocol,
                                   SampledLinkPredictionEvaluator,
                                   StreamingLinkPredictionEvaluator, evaluator_for)
from native_pyg.evaluation.protocols import PROTOCOL_CHOICES


@pytest.fixture(scope='module')
def data():
    from native_pyg.data.schema import build_mmkg
    g = torch.Generator().manual_seed(0)
    triples = torch.stack([torch.randint(20, (60,), generator=g),
                           torch.randint(2, (60,), generator=g),
                           torch.randint(20, (60,), generator=g)], 1)
    return build_mmkg(20, 2, triples[:40], triples[40:50], triples[50:])


def test_protocol_names_are_parsed_and_resolved_in_one_place():
    assert PROTOCOL_CHOICES == ('auto', 'full', 'streamed', 'sampled')
    assert Protocol.parse('sampled') is Protocol.SAMPLED
    with pytest.raises(ValueError, match="unknown evaluation protocol 'quick'; "
                                         "expected one of full, streamed, sampled"):
        Protocol.parse('quick')
    assert Protocol.resolve('auto', stored_features=True) is Protocol.STREAMED
    assert Protocol.resolve('auto', stored_features=False) is Protocol.FULL
    assert Protocol.resolve('sampled', stored_features=True) is Protocol.SAMPLED
    with pytest.raises(ValueError, match="--protocol must be one of auto, full, streamed, "
                                         "sampled, got 'quick'"):
        Protocol.resolve('quick', False, '--protocol')


def test_the_registry_names_each_protocol_as_its_evaluator_does():
    assert PROTOCOLS == {'full': LinkPredictionEvaluator,
                         'streamed': StreamingLinkPredictionEvaluator,
                         'sampled': SampledLinkPredictionEvaluator}
    for name, cls in PROTOCOLS.items():
        assert cls.protocol == name == Protocol.parse(name).value


def test_evaluator_for_hands_each_protocol_only_its_own_options(data):
    with pytest.raises(ValueError, match='unknown evaluation protocol'):
        evaluator_for(data, 'quick')
    full = evaluator_for(data, 'full', 5, eval_batch_size=7, ties='optimistic')
    streamed = evaluator_for(data, 'streamed', 5, eval_batch_size=7)
    sampled = evaluator_for(data, 'sampled', 5, eval_batch_size=7)
    assert type(full) is LinkPredictionEvaluator and full.batch_size == 7
    assert type(streamed) is StreamingLinkPredictionEvaluator and streamed.batch_size == 512
    assert type(sampled) is SampledLinkPredictionEvaluator and sampled.batch_size == 64
    assert sampled.num_candidates == 5 and not hasattr(full, 'num_candidates')
    assert evaluator_for(data).batch_size == 256
    # what the command line records and prints of each
    assert full.protocol_fields() == {'protocol': 'full'}
    assert full.describe() == 'full, optimistic ties'
    assert streamed.protocol_fields() == {'protocol': 'streamed'}
    assert sampled.protocol_fields() == {'protocol': 'sampled', 'num_candidates': 5}
    assert sampled.describe() == 'sampled, realistic ties, 5 candidates per query'
