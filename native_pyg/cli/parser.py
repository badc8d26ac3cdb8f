"""The ``native-pyg`` argument parser: every command, its options and
their help."""
from __future__ import annotations

import argparse

from native_pyg.cli.inference import cmd_complete, cmd_evaluate, cmd_predict
from native_pyg.cli.options import (COMPILE_HELP, add_config_args, add_dataset_args,
                                    add_threads_arg)
from native_pyg.cli.paths import path_arg
from native_pyg.cli.tools import cmd_convert_features, cmd_experiment, cmd_stats
from native_pyg.cli.train import cmd_train
from native_pyg.cli.tune import cmd_tune
from native_pyg.training.trackers import TRACKERS


class Parser(argparse.ArgumentParser):
    """Bad arguments give one clear line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from native_pyg import __version__
    parser = Parser(prog='native-pyg', description='Multi-modal KG completion in the wild.')
    parser.add_argument('--version', action='version', version=f'native-pyg {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=Parser)
    p = sub.add_parser('stats', help='print the data report of a dataset')
    add_dataset_args(p)
    p.add_argument('--plot', metavar='PNG', type=path_arg, help='save a modality-coverage bar chart')
    p.add_argument('--json', metavar='PATH', type=path_arg, help='save the report as JSON')
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser('train', help='train NativE (or a structure-only baseline)')
    add_config_args(p, 'YAML config (examples/configs/<dataset>.yaml)',
                    'override a config key, e.g. --set training.lr=1e-3 (repeatable)')
    p.add_argument('--modalities', help="comma-separated modalities, or 'none' for structure only")
    p.add_argument('--scorer', help='rotate (default), transe, distmult or complex')
    p.add_argument('--no-adversarial', action='store_true', help='train without CoMAT')
    p.add_argument('--epochs', type=int, help='override training.epochs')
    p.add_argument('--device', help="'auto' (default), 'cpu' or 'cuda'")
    p.add_argument('--encoder', choices=['none', 'rgcn', 'compgcn'],
                   help='structural encoder: none (embedding table, default), rgcn or compgcn')
    p.add_argument('--num-neighbors', metavar='K1,K2',
                   help="neighbours sampled per hop for a GNN encoder, e.g. 10,5 (-1 = all); "
                        "'full' = the whole training graph every step (default)")
    p.add_argument('--out', required=True, type=path_arg,
                   help='output directory (checkpoints, metrics)')
    p.add_argument('--resume', action='store_true', help='continue from OUT/last.pt')
    p.add_argument('--overwrite', action='store_true',
                   help='replace the run already in OUT (it is kept until the new run '
                        'writes its first checkpoint)')
    p.add_argument('--allow-config-changes', action='store_true',
                   help='with --resume: apply config changes beyond epochs, eval_every, '
                        'patience and progress (e.g. training.lr)')
    p.add_argument('--quiet', action='store_true',
                   help='no progress bars or per-epoch lines, only the final metrics')
    p.add_argument('--deterministic', action='store_true',
                   help='one thread and deterministic algorithms: bit-identical reruns')
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    p.add_argument('--tracker', action='append', choices=TRACKERS,
                   help='log config, losses, validation metrics, seconds per epoch and modality '
                        'weights per relation under OUT/tracking/<name> (repeatable)')
    add_threads_arg(p)
    p.set_defaults(func=cmd_train)

    from native_pyg.experiments import EXPERIMENTS, VARIANTS
    p = sub.add_parser('experiment', help="run one of the paper's experiments "
                                          "(table, JSON and plot under --out)")
    p.add_argument('name', choices=EXPERIMENTS)
    add_config_args(p, 'YAML config the variants start from')
    p.add_argument('--out', required=True, type=path_arg,
                   help='results directory (finished cells are kept)')
    p.add_argument('--seeds', default='0,1,2', help='comma-separated seeds (default: 0,1,2)')
    for flag, kind, default in (('--epochs', int, 100), ('--dim', int, 100),
                                ('--negatives', int, 32), ('--lr', float, 1e-3),
                                ('--batch-size', int, 1024), ('--eval-every', int, 25),
                                ('--margin', float, 4.0)):  # Budget's built-ins
        p.add_argument(flag, type=kind, help=f'every cell (default: the --config or --set '
                                             f'value, else {default:g})')
    p.add_argument('--variants', metavar='V1,V2', help='only these variants, e.g. native,mean')
    p.add_argument('--settings', metavar='S1,S2',
                   help="only these settings, e.g. 'entity' (every entity-level rate) or "
                        "'modality-0.4'")
    p.add_argument('--shard', default='0/1', metavar='I/N',
                   help='train only every N-th cell starting at I, so N processes sharing '
                        '--out split the experiment (default 0/1: all)')
    p.add_argument('--no-train', action='store_true',
                   help="train nothing: tabulate the finished cells in --out (e.g. after "
                        "shards on several machines)")
    add_threads_arg(p)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser('tune', help="search a variant's config with Optuna (TPE, pruning on "
                                    "valid MRR; study in OUT/study.db, OUT/best.yaml)")
    add_config_args(p, 'YAML config the trials start from')
    p.add_argument('--out', required=True, type=path_arg,
                   help='study directory: study.db (resumable, shareable), best.yaml, plots')
    p.add_argument('--trials', type=int, default=20,
                   help="finished trials the study should hold; rerun with more to add only "
                        "the missing ones (default: 20)")
    p.add_argument('--variant', default='native', choices=sorted(VARIANTS),
                   metavar='VARIANT', help='native (default), native-no-comat, adamf, mean, '
                                           'rotate, ... (as in experiment)')
    p.add_argument('--space', type=path_arg,
                   help="search space YAML (config key -> {type: float|int|categorical, "
                        "low, high, log, choices}); default: the variant's")
    p.add_argument('--epochs', type=int, help='per-trial budget (training.epochs)')
    p.add_argument('--eval-every', type=int, help='validation (and pruning) every N epochs')
    p.add_argument('--pruner', default='median', choices=['median', 'halving', 'none'])
    p.add_argument('--seed', type=int, default=0, help="the sampler's seed")
    p.add_argument('--quiet', action='store_true', help="no progress bars inside trials")
    p.add_argument('--tracker', choices=TRACKERS,
                   help='a result tracker per trial, under OUT/trials/<number>/<name>')
    add_threads_arg(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser('convert-features',
                       help='write feature files to a disk-backed feature store (memory-mapped, '
                            'read by entity id)')
    p.add_argument('files', nargs='+', metavar='MODALITY=PATH',
                   help='a [N, d] .npy or .pt file, or a directory of row chunks, per modality '
                        '(row i = entity i); MODALITY.mask=PATH gives its presence ([N] bool or '
                        '0/1 .npy or .pt; default: a row is missing when it is all zero)')
    p.add_argument('--out', required=True, type=path_arg,
                   help='the store directory: new, or an empty directory (nothing is replaced)')
    p.add_argument('--dtype', default='float16', choices=['float16', 'float32'],
                   help='storage precision (default: float16, half the bytes)')
    p.add_argument('--chunk-rows', type=int, default=65536,
                   help='rows read and written at a time (default: 65536)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_convert_features)

    p = sub.add_parser('evaluate', help='filtered link-prediction metrics of a checkpoint')
    p.add_argument('--checkpoint', required=True, type=path_arg)
    p.add_argument('--split', default='test', choices=['valid', 'test'])
    p.add_argument('--ties', default='realistic', choices=['realistic', 'optimistic',
                                                           'pessimistic'])
    p.add_argument('--device', help="'auto' (default), 'cpu' or 'cuda'")
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    p.add_argument('--protocol', choices=['full', 'streamed', 'sampled'],
                   help="'full' 1-vs-all ranking (default), 'streamed' (the same ranks over "
                        "candidate chunks, bounded memory; default for a disk feature store) or "
                        "'sampled' (--num-candidates filtered candidates per query)")
    p.add_argument('--num-candidates', type=int, default=1000,
                   help='candidates per query of --protocol sampled (default: 1000)')
    p.add_argument('--eval-sample', type=int, metavar='N',
                   help='rank N seeded random triples of the split, with 95 %% confidence '
                        'intervals')
    p.add_argument('--sample-seed', type=int, default=0, help='seed of --eval-sample')
    p.add_argument('--out', type=path_arg, help='write the metrics as JSON here')
    p.add_argument('--root', type=path_arg,
                   help='look for the dataset here instead of the recorded root')
    p.add_argument('--feature-store', type=path_arg, metavar='PATH',
                   help="the run's converted feature store, where it lies now (default: "
                        "where it was trained)")
    add_threads_arg(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser('complete', help='the missing facts the model proposes, as a TSV table '
                                        '(never a triple train, valid or test holds)')
    p.add_argument('--checkpoint', required=True, type=path_arg)
    p.add_argument('--relation', action='append', required=True, metavar='NAME_OR_ID',
                   help='a relation to complete (repeatable)')
    p.add_argument('--heads', type=path_arg, metavar='FILE',
                   help='the heads to complete, one name or id per line (default: every '
                        'entity)')
    p.add_argument('--k', type=int, default=10, help='proposals per (head, relation) '
                                                     '(default: 10)')
    p.add_argument('--out', required=True, type=path_arg,
                   help='the TSV table: head, relation, tail, score, rank and the tail\'s '
                        'ReDAF weights; a killed run continues when rerun')
    p.add_argument('--root', type=path_arg,
                   help='look for the dataset here instead of the recorded root')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    p.add_argument('--feature-store', type=path_arg, metavar='PATH',
                   help="the run's converted feature store, where it lies now (default: "
                        "where it was trained)")
    add_threads_arg(p)
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser('predict', help='top-k completions of (head, relation, ?) or (?, relation, tail)')
    p.add_argument('--checkpoint', required=True, type=path_arg)
    p.add_argument('--head', help='entity name or id: predict tails')
    p.add_argument('--tail', help='entity name or id: predict heads')
    p.add_argument('--relation', required=True, help='relation name or id')
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--root', type=path_arg,
                   help='look for the dataset here instead of the recorded root')
    # --new-entity / --new-name: the spellings of earlier versions
    p.add_argument('--add-entity', '--new-entity', dest='add_entity', action='append',
                   metavar='FILE.pt', type=path_arg,
                   help="add an entity the model never saw: a .pt dict {modality: features "
                        "[d]} (optional 'name'); then usable in --head/--tail (repeatable)")
    p.add_argument('--add-name', '--new-name', dest='add_name', action='append', metavar='TEXT',
                   help='add an entity given only by its name, encoded as the text modality '
                        '(models trained with --text-features names; repeatable)')
    p.add_argument('--save', metavar='PATH', type=path_arg,
                   help='write the checkpoint with the added entities to PATH')
    p.add_argument('--feature-store', type=path_arg, metavar='PATH',
                   help="the run's converted feature store, where it lies now (default: "
                        "where it was trained)")
    add_threads_arg(p)
    p.set_defaults(func=cmd_predict)
    return parser
