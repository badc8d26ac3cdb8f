"""Writes the feature files of this example, deterministically.

Row ``i`` of every feature file belongs to the entity on line ``i + 1`` of
``entities.txt`` (the manifest names that file as the entity order).

- ``features/image.npy``: a 16-d stand-in for image embeddings, float32:
  one centre per kind of entity (country, city, river) plus small noise;
  languages and Europe have no picture (``features/image.mask.npy``).
- ``features/numeric.npy``: latitude / 90 and longitude / 180 of the
  cities, float32; only the cities have them (``features/numeric.mask.txt``
  lists them by name).

Run from anywhere: ``python examples/my_mmkg/make_features.py``.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Tuple

import numpy as np

HERE = osp.dirname(osp.abspath(__file__))

#: (latitude, longitude) of the cities in the example, rounded
COORDINATES: Dict[str, Tuple[float, float]] = {
    'Paris': (48.86, 2.35), 'Berlin': (52.52, 13.40), 'Rome': (41.90, 12.50),
    'Madrid': (40.42, -3.70), 'Lisbon': (38.72, -9.14), 'Amsterdam': (52.37, 4.90),
    'Brussels': (50.85, 4.35), 'Bern': (46.95, 7.45), 'Vienna': (48.21, 16.37),
    'Warsaw': (52.23, 21.01), 'Lyon': (45.76, 4.84), 'Munich': (48.14, 11.58),
    'Milan': (45.46, 9.19), 'Barcelona': (41.39, 2.17), 'Porto': (41.15, -8.61),
    'Krakow': (50.06, 19.94),
}
COUNTRIES = {'France', 'Germany', 'Italy', 'Spain', 'Portugal', 'Netherlands', 'Belgium',
             'Switzerland', 'Austria', 'Poland'}
RIVERS = {'Seine', 'Rhine', 'Danube', 'Tagus', 'Vistula', 'Po'}


def kind(name: str) -> str:
    """The kind of an entity of this example; ``''`` for those without a picture."""
    if name in COUNTRIES:
        return 'country'
    if name in COORDINATES:
        return 'city'
    if name in RIVERS:
        return 'river'
    return ''


def main(dim: int = 16, seed: int = 0) -> None:
    """Writes the feature files into ``features/`` next to this script.

    Args:
        dim (int): Size of the image stand-in vectors.
        seed (int): Seed of the random centres and noise.
    """
    with open(osp.join(HERE, 'entities.txt'), encoding='utf-8') as f:
        names: List[str] = [line.strip() for line in f if line.strip()]
    rng = np.random.default_rng(seed)
    centres = {k: rng.normal(size=dim) for k in ('country', 'city', 'river')}
    image = np.zeros((len(names), dim), dtype=np.float32)
    has_image = np.zeros(len(names), dtype=bool)
    numeric = np.zeros((len(names), 2), dtype=np.float32)
    for i, name in enumerate(names):
        k = kind(name)
        if k:
            image[i] = centres[k] + 0.3 * rng.normal(size=dim)
            has_image[i] = True
        if name in COORDINATES:
            lat, lon = COORDINATES[name]
            numeric[i] = (lat / 90.0, lon / 180.0)
    out = osp.join(HERE, 'features')
    np.save(osp.join(out, 'image.npy'), image)
    np.save(osp.join(out, 'image.mask.npy'), has_image)
    np.save(osp.join(out, 'numeric.npy'), numeric)
    with open(osp.join(out, 'numeric.mask.txt'), 'w', encoding='utf-8') as f:
        f.write(''.join(f'{n}\n' for n in names if n in COORDINATES))
    print(f"wrote image {image.shape} ({int(has_image.sum())} with a picture) and numeric "
          f"{numeric.shape} ({len(COORDINATES)} cities) to {out}")


if __name__ == '__main__':
    main()
