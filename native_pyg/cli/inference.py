"""``native-pyg evaluate`` and ``native-pyg predict``: a trained checkpoint
ranked on a split, or asked for the top completions of one query, by
entity and relation names."""
from __future__ import annotations

import os
from typing import List, Optional

from native_pyg.cli.errors import CLIError
from native_pyg.data.safe_load import first_line
from native_pyg.cli.options import distributed, use_threads
from native_pyg.cli.paths import check_output_file, write_json_atomic


def _restore(path: str, root: Optional[str] = None, device: Optional[str] = None,
             feature_store: Optional[str] = None):
    """The :class:`~native_pyg.pipeline.LoadedRun` of a checkpoint; one line on failure."""
    from native_pyg.pipeline import load_run
    try:
        return load_run(path, root, device, feature_store=feature_store)
    except ValueError as e:
        raise CLIError(first_line(e)) from None


def cmd_evaluate(args) -> int:
    from native_pyg.evaluation import format_metrics
    from native_pyg.evaluation.protocols import evaluator_for
    from native_pyg.evaluation.query_subsets import evaluate_sample
    from native_pyg.data import split_triples
    from native_pyg.training.distributed import main_first, sharded_ranks
    if args.out:  # before minutes of ranking, not after
        check_output_file(args.out, '--out')
    use_threads(args.threads)
    info = distributed(args.device)
    with main_first(info):
        loaded = _restore(args.checkpoint, args.root, args.device or 'auto',
                          args.feature_store)
    run, data, model = loaded.run, loaded.data, loaded.model
    protocol = args.protocol or ('streamed' if model.inputs.store is not None else 'full')
    try:
        ev = evaluator_for(data, protocol, args.num_candidates, ties=args.ties,
                           progress=info.is_main, compile=args.compile)
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
    metrics['protocol'] = protocol  # as training's metrics.json records it
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
        print(f"95 % confidence half-widths: MRR +-{100 * ci['mrr']:.2f} %, "
              f"H@10 +-{100 * ci['hits@10']:.2f} %")
    if args.out:
        write_json_atomic(args.out, metrics, '--out', replace=False)
        print(f"metrics written to {args.out}")
    return 0


def resolve(kind: str, value: str, names: List[str]) -> int:
    """:func:`native_pyg.prediction.resolve`, its error as one CLI line."""
    from native_pyg.prediction import resolve as resolve_name
    try:
        return resolve_name(kind, value, names)
    except ValueError as e:
        raise CLIError(str(e)) from None


def _add_entities(args, loaded) -> None:
    """Appends the entities of ``--add-entity FILE`` and ``--add-name TEXT``
    to a restored model (and with ``--save`` writes it)."""
    from native_pyg.data.safe_load import load_pt
    from native_pyg.training import save_checkpoint
    run, model = loaded.run, loaded.model
    for path in args.add_entity or []:
        try:
            entry = load_pt(path, 'an entity file')
        except ValueError as e:
            raise CLIError(f"--add-entity {e}") from None
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
        save_checkpoint({**loaded.state, 'model': model.state_dict()}, args.save)
        print(f"checkpoint with {len(model.added_entity_names)} added entities: {args.save}")


def cmd_predict(args) -> int:
    if args.k < 1:
        raise CLIError(f"--k {args.k}: expected a positive number of predictions")
    if (args.head is None) == (args.tail is None):
        raise CLIError("give exactly one of --head (predict tails) or --tail (predict heads)")
    if args.save:
        check_output_file(args.save, '--save')
    use_threads(args.threads)
    loaded = _restore(args.checkpoint, args.root, feature_store=args.feature_store)
    _add_entities(args, loaded)
    from native_pyg.prediction import predict
    try:
        table = predict(loaded, head=args.head, relation=args.relation, tail=args.tail,
                        k=args.k)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(table)
    return 0


def cmd_complete(args) -> int:
    from native_pyg.completion import complete
    from native_pyg.data.readers import read_name_list
    if args.k < 1:
        raise CLIError(f"--k {args.k}: expected a positive number of proposals")
    heads = None
    if args.heads:
        try:
            heads = read_name_list(args.heads)
        except ValueError as e:
            raise CLIError(f"--heads {e}") from None
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise CLIError(f"--out {args.out}: the directory {parent} does not exist")
    use_threads(args.threads)
    loaded = _restore(args.checkpoint, args.root, feature_store=args.feature_store)
    try:
        complete(loaded, args.relation, args.out, heads=heads, k=args.k,
                 progress=not args.quiet, source=args.checkpoint, compile=args.compile)
    except ValueError as e:
        raise CLIError(first_line(e)) from None
    print(f"proposals written to {args.out}")
    return 0

