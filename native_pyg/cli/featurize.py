"""``native-pyg featurize``: one modality's raw inputs (images, descriptions
or numeric attributes) encoded into feature files beside the dataset, in
bounded memory, resumable after a kill."""
from __future__ import annotations

import argparse
import os.path as osp

from native_pyg.cli.errors import CLIError
from native_pyg.cli.loading import load
from native_pyg.cli.options import add_threads_arg
from native_pyg.cli.paths import path_arg
from native_pyg.cli.process import use_threads

HELP = 'encode raw images, descriptions or numeric attributes into a modality\'s feature files'


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``featurize``'s options: the dataset, one kind of raw input, the
    encoder, and where the files go."""
    from native_pyg.features.raw_inputs import DEFAULT_IMAGE_MODEL, NORMALIZATIONS, POOLS
    p.add_argument('--dataset', required=True,
                   help='the dataset whose entities the inputs name: a folder path (e.g. '
                        'examples/my_mmkg) or a WildKGC name')
    p.add_argument('--root', type=path_arg, help='dataset root (for a WildKGC name)')
    raw = p.add_mutually_exclusive_group(required=True)
    raw.add_argument('--images', type=path_arg, metavar='TSV',
                     help='entity<TAB>image path (several rows per entity allowed; paths '
                          'relative to the TSV)')
    raw.add_argument('--image-dir', type=path_arg, metavar='DIR',
                     help='one sub-folder of images per entity, named as the entity')
    raw.add_argument('--text', type=path_arg, metavar='TSV', help='entity<TAB>description')
    raw.add_argument('--numeric', type=path_arg, metavar='TSV',
                     help='entity<TAB>attribute<TAB>value (a number or a date YYYY-MM-DD)')
    p.add_argument('--modality', help='the modality the rows are (default: image, text or '
                                      'numeric, after the input)')
    p.add_argument('--model', help=f'images: a torchvision model (default: '
                                   f'{DEFAULT_IMAGE_MODEL}; also vit_b_16, ...) or clip:ARCH '
                                   f'(open_clip); text: a sentence-transformers name or path '
                                   f'(default: all-MiniLM-L6-v2, offline)')
    p.add_argument('--weights', metavar='default|none|PATH',
                   help="image weights: 'default' (the model's own, downloaded where the machine "
                        "can; default), a local state-dict file, or 'none' (random, to try the "
                        "pipeline without a download)")
    p.add_argument('--pool', choices=POOLS, default='mean',
                   help='several images of one entity: mean (default), max or first')
    p.add_argument('--normalize', choices=NORMALIZATIONS, default='zscore',
                   help='numeric attributes, each fit on all entities that have it: zscore '
                        '(default), minmax, rank (robust to heavy tails) or none')
    p.add_argument('--batch-size', type=int, default=32, help='images or texts at a time '
                                                              '(default: 32)')
    p.add_argument('--device', default='cpu', help="where the encoder runs (default: cpu)")
    p.add_argument('--limit', type=int, metavar='N', help='encode the first N entities only '
                                                          '(a quick try; the rest are masked)')
    p.add_argument('--dtype', choices=['float16', 'float32'], default='float16',
                   help='storage precision (default: float16)')
    p.add_argument('--out', type=path_arg, metavar='DIR',
                   help='where the files go (default: DATASET/features for a folder)')
    p.add_argument('--overwrite', action='store_true',
                   help="replace the modality's files a finished run wrote")
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    add_threads_arg(p)
    p.set_defaults(func=cmd_featurize)


def cmd_featurize(args) -> int:
    from native_pyg.config import RunConfig
    from native_pyg.data.readers import MMKGFormatError
    from native_pyg.datasets import is_dataset_path
    from native_pyg.features.featurize import featurize
    from native_pyg.features.raw_inputs import KINDS, RawInputs, row_source
    kind, path = next((k, getattr(args, k)) for k in KINDS if getattr(args, k) is not None)
    modality = args.modality or KINDS[kind]
    out = args.out
    if out is None:
        if not is_dataset_path(args.dataset):
            raise CLIError(f"--out: needed for the dataset {args.dataset} (a folder's files go "
                           f"to FOLDER/features)")
        out = osp.join(args.dataset, 'features')
    for value, option in ((args.limit, '--limit'), (args.batch_size, '--batch-size')):
        if value is not None and value < 1:
            raise CLIError(f"{option} {value}: expected a positive number")
    if not osp.exists(path):  # before the dataset loads: a typo costs one line
        raise CLIError(f"{path}: {'folder' if kind == 'image_dir' else 'file'} not found")
    use_threads(args.threads)
    try:
        inputs = RawInputs(kind, path, model=args.model, weights=args.weights, pool=args.pool,
                           normalize=args.normalize, batch_size=args.batch_size,
                           device=args.device)
    except ValueError as e:
        raise CLIError(str(e)) from None
    data = load(RunConfig(dataset=args.dataset, root=args.root).locate())
    names = list(data['entity'].name)
    index = {name: i for i, name in enumerate(names)}
    try:
        source, lines = row_source(inputs, index, len(names))
        for line in lines:
            print(line)
        report = featurize(source, len(names), out, modality, dtype=args.dtype, limit=args.limit,
                           overwrite=args.overwrite, progress=not args.quiet)
    except (ValueError, ImportError, MMKGFormatError) as e:
        raise CLIError(str(e)) from None
    print(report.line())
    # relative to the folder where the files lie inside it (as a manifest names them)
    files = {k: osp.relpath(v, args.dataset) if is_dataset_path(args.dataset)
             and not osp.relpath(v, args.dataset).startswith('..') else osp.abspath(v)
             for k, v in report.files.items()}
    print(f"wrote {report.files['file']} (+ .mask.npy, .count.npy, .json); to train on it, "
          f"name it in the folder's mmkg.yaml:\n  features:\n    {modality}: "
          f"{{file: {files['file']}, mask: {files['mask']}}}")
    return 0
