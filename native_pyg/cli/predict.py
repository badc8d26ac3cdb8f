"""``native-pyg predict``: the top completions of one query of a trained
checkpoint, by entity and relation names, with entities the model never saw
added on the way."""
from __future__ import annotations

import argparse
import os

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import restore
from native_pyg.cli.options import add_restore_args, add_root_arg
from native_pyg.cli.paths import check_output_file, path_arg
from native_pyg.cli.process import use_threads

HELP = 'top-k completions of (head, relation, ?) or (?, relation, tail)'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``predict``'s options: the checkpoint, the query and the entities to add."""
    p.add_argument('--checkpoint', required=True, type=path_arg)
    p.add_argument('--head', help='entity name or id: predict tails')
    p.add_argument('--tail', help='entity name or id: predict heads')
    p.add_argument('--relation', required=True, help='relation name or id')
    p.add_argument('--k', type=int, default=10)
    add_root_arg(p)
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
    add_restore_args(p)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from native_pyg.prediction import predict
    if args.k < 1:
        raise CLIError(f"--k {args.k}: expected a positive number of predictions")
    if (args.head is None) == (args.tail is None):
        raise CLIError("give exactly one of --head (predict tails) or --tail (predict heads)")
    if args.save:
        check_output_file(args.save, '--save')
    use_threads(args.threads)
    loaded = restore(args.checkpoint, args.root, feature_store=args.feature_store)
    add_entities(args, loaded)
    try:
        table = predict(loaded, head=args.head, relation=args.relation, tail=args.tail,
                        k=args.k)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(table)
    return 0


def add_entities(args, loaded) -> None:
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
