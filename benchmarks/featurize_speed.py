"""Featurizing speed: images per second through torchvision encoders (random
weights: the cost does not depend on them), decoding, each model's standard
preprocessing and pooling included, and descriptions per second through the
default text model; prints one JSON line.

    python benchmarks/featurize_speed.py [--images 128] [--texts 512] [--threads 2] \
        [--models resnet50,vit_b_16] [--batch-size 32]
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def _images(folder: str, count: int, size: int = 256):
    """``count`` seeded ``size`` x ``size`` PNG files (camera-like sizes are
    larger; every model resizes to 224 first)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = osp.join(folder, f'{i}.png')
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=128)
    p.add_argument('--texts', type=int, default=512)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--models', default='resnet50,vit_b_16')
    p.add_argument('--batch-size', type=int, default=32)
    args = p.parse_args(argv)
    import numpy as np
    import torch
    from native_pyg.features.descriptions import DescriptionRows
    from native_pyg.features.image_encoders import load_image_encoder
    from native_pyg.features.images import ImageRows
    torch.set_num_threads(args.threads)
    out = {'threads': args.threads, 'batch_size': args.batch_size, 'images': args.images,
           'torch': torch.__version__}
    with tempfile.TemporaryDirectory() as folder:
        paths = _images(folder, args.images)
        images = {i: [path] for i, path in enumerate(paths)}  # one image per entity
        ids = np.arange(len(paths), dtype=np.int64)
        for model in args.models.split(','):
            source = ImageRows(images, load_image_encoder(model, weights='none'),
                               batch_size=args.batch_size)
            source.rows(ids[:args.batch_size])  # warm-up: first-call allocations
            start = time.perf_counter()
            chunk = source.rows(ids)
            seconds = time.perf_counter() - start
            assert chunk.mask.all()
            out[f'{model}_images_per_s'] = round(len(ids) / seconds, 2)
    words = ('the river flows through an old city with a large cathedral and a market square '
             'where people meet on sunday mornings').split()
    rng = np.random.default_rng(0)
    texts = {i: ' '.join(rng.choice(words, size=30)) for i in range(args.texts)}
    source = DescriptionRows(texts, batch_size=64)
    tids = np.arange(args.texts, dtype=np.int64)
    source.rows(tids[:64])  # loads the model
    start = time.perf_counter()
    source.rows(tids)
    out['descriptions_per_s'] = round(args.texts / (time.perf_counter() - start), 2)
    out['text_model_dim'] = source.dim
    print(json.dumps(out))


if __name__ == '__main__':
    main()
