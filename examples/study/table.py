"""The study's table: test MRR / H@1 / H@10 (%, realistic ties, the model
selected on valid) of every retrained run under OUT/<dataset>/<variant>/
retrain-seed*/, mean ± sample std over seeds, and each study's best valid
MRR and trial count.

    python examples/study/table.py runs/study
"""
import glob
import json
import os.path as osp
import re
import statistics
import sys


def mean_std(values):
    values = [100 * v for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f'{statistics.mean(values):.2f} ± {std:.2f}'


def main(out: str) -> None:
    print('| dataset | variant | completed trials | best valid MRR | seeds | test MRR | H@1 | H@10 |')
    print('|---|---|---|---|---|---|---|---|')
    for study in sorted(glob.glob(osp.join(out, '*', '*'))):
        dataset, variant = study.split(osp.sep)[-2:]
        runs = [json.load(open(p))['test']['both']
                for p in sorted(glob.glob(osp.join(study, 'retrain-seed*', 'metrics.json')))]
        best = {}
        if osp.exists(osp.join(study, 'best.yaml')):  # its first line says what it is the best of
            head = open(osp.join(study, 'best.yaml')).readline()
            m = re.search(r'best of (\d+) completed trials.*valid MRR ([0-9.]+)', head)
            best = {'finished_trials': int(m[1]), 'best_value': float(m[2])} if m else {}
        cells = [mean_std([r[k] for r in runs]) if runs else '—'
                 for k in ('mrr', 'hits@1', 'hits@10')]
        valid = best.get('best_value')
        print(f"| {dataset} | {variant} | {best.get('finished_trials', '—')} | "
              f"{'—' if valid is None else f'{100 * valid:.2f}'} | {len(runs)} | "
              + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'runs/study')
