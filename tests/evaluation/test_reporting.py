import json

from native_pyg.evaluation import LinkPredictionEvaluator, compare_metrics, format_metrics
from tests.evaluation.tables import random_problem


def test_result_is_json_serialisable_and_formatted():
    known, test, model = random_problem(seed=7)
    ev = LinkPredictionEvaluator(12, known, relation_category=['1-1', '1-N', 'N-N'],
                                 progress=True)
    m = ev.evaluate(model, test)
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    table = format_metrics(m)
    for label in ('MRR', 'MR', 'H@1', 'H@3', 'H@10', 'head', 'tail', 'both', 'raw', 'N-N'):
        assert label in table
    assert f"{m['both']['mrr'] * 100:.2f}" in table
    other = LinkPredictionEvaluator(12, known, ties='optimistic').evaluate(model, test)
    side = compare_metrics({'model-a': m, 'model-b': m})
    assert 'model-a' in side and 'model-b' in side and 'realistic' in side
    assert 'MIXED' in compare_metrics({'a': m, 'b': other})
