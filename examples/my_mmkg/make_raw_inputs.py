"""Writes the raw inputs of this example, deterministically: the files a
modality is featurized from (``native-pyg featurize``, or a manifest that
names them, as ``mmkg-raw.yaml`` does) instead of ready-made feature arrays.

Everything goes under ``raw/`` next to this script:

- ``raw/images/<name>.png``: small drawn pictures (48x48 RGB, a few hundred
  bytes each; nothing is downloaded): the countries as three-stripe flags in
  seeded colours, the cities as a skyline of blocks, the rivers as a wavy
  blue line on green. A few entities have a second picture
  (``Paris_2.png``); the languages and Europe have none.
  ``raw/images/Lyon_broken.png`` is deliberately not an image (a few bytes
  of text): featurizing skips it and counts it, and Lyon keeps its good
  picture.
- ``raw/images.tsv``: ``entity<TAB>images/<file>.png``, paths relative to
  ``raw/`` (the folder of the table), several rows for some entities.
- ``raw/descriptions.tsv``: ``entity<TAB>description``, one short English
  sentence for every entity but three (Krakow, Polish, Europe).
- ``raw/attributes.tsv``: ``entity<TAB>attribute<TAB>value``: the cities'
  latitude, longitude (the table of ``make_features.py``), population and,
  for some, a founding date (``YYYY`` or ``YYYY-MM-DD``); the countries'
  area_km2 and population; the rivers' length_km. Rounded, realistic numbers.

Run from anywhere: ``python examples/my_mmkg/make_raw_inputs.py`` (numpy and
Pillow only; the same files on every run).
"""
from __future__ import annotations

import os
import os.path as osp
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
from make_features import COORDINATES, COUNTRIES, RIVERS, kind  # noqa: E402

SIZE = 48
#: entities with a second picture, ``<name>_2.png``
SECOND_PICTURE = ('France', 'Italy', 'Paris', 'Berlin', 'Rome', 'Rhine', 'Danube')
#: entities left without a description
NO_DESCRIPTION = ('Krakow', 'Polish', 'Europe')

#: flag colours the countries' stripes are drawn from
PALETTE = [(0, 85, 164), (255, 255, 255), (239, 65, 53), (0, 0, 0), (255, 206, 0),
           (0, 140, 69), (221, 0, 0), (174, 28, 40), (33, 70, 139), (120, 190, 230)]

#: country: (area in km2, population), rounded
COUNTRY_FACTS: Dict[str, Tuple[int, int]] = {
    'France': (551700, 68000000), 'Germany': (357600, 84000000),
    'Italy': (301300, 59000000), 'Spain': (506000, 48000000),
    'Portugal': (92200, 10400000), 'Netherlands': (41900, 17900000),
    'Belgium': (30700, 11800000), 'Switzerland': (41300, 8900000),
    'Austria': (83900, 9100000), 'Poland': (312700, 36700000),
}
#: city: population (city proper), rounded
CITY_POPULATION: Dict[str, int] = {
    'Paris': 2100000, 'Berlin': 3700000, 'Rome': 2800000, 'Madrid': 3300000,
    'Lisbon': 550000, 'Amsterdam': 920000, 'Brussels': 1200000, 'Bern': 134000,
    'Vienna': 2000000, 'Warsaw': 1860000, 'Lyon': 520000, 'Munich': 1500000,
    'Milan': 1370000, 'Barcelona': 1640000, 'Porto': 230000, 'Krakow': 800000,
}
#: city: first record or founding date (only those after the year 1000)
CITY_FOUNDED: Dict[str, str] = {
    'Berlin': '1237', 'Amsterdam': '1275-10-27', 'Munich': '1158-06-14', 'Bern': '1191',
    'Krakow': '1257-06-05', 'Warsaw': '1300',
}
#: river: length in km, rounded
RIVER_LENGTH: Dict[str, int] = {
    'Seine': 777, 'Rhine': 1233, 'Danube': 2850, 'Tagus': 1007, 'Vistula': 1047, 'Po': 652,
}

DESCRIPTIONS: Dict[str, str] = {
    'France': 'France is a country in western Europe; its capital is Paris.',
    'Germany': 'Germany is a country in central Europe; its capital is Berlin.',
    'Italy': 'Italy is a country in southern Europe, a long peninsula in the Mediterranean.',
    'Spain': 'Spain is a country on the Iberian Peninsula in south-western Europe.',
    'Portugal': 'Portugal is a country on the Atlantic coast of the Iberian Peninsula.',
    'Netherlands': 'The Netherlands is a low-lying country on the North Sea.',
    'Belgium': 'Belgium is a small country in western Europe between France and the '
               'Netherlands.',
    'Switzerland': 'Switzerland is a mountainous country in the Alps.',
    'Austria': 'Austria is a country in central Europe, on the Danube and in the Alps.',
    'Poland': 'Poland is a country in central Europe on the Baltic Sea.',
    'Paris': 'Paris is the capital of France, on the Seine.',
    'Berlin': 'Berlin is the capital and largest city of Germany.',
    'Rome': 'Rome is the capital of Italy, an ancient city on the Tiber.',
    'Madrid': 'Madrid is the capital of Spain, in the centre of the country.',
    'Lisbon': 'Lisbon is the capital of Portugal, where the Tagus meets the Atlantic.',
    'Amsterdam': 'Amsterdam is the capital of the Netherlands, a city of canals.',
    'Brussels': 'Brussels is the capital of Belgium.',
    'Bern': 'Bern is the capital of Switzerland, on the river Aare.',
    'Vienna': 'Vienna is the capital of Austria, on the Danube.',
    'Warsaw': 'Warsaw is the capital of Poland, on the Vistula.',
    'Lyon': 'Lyon is a large city in France where the Rhone and the Saone meet.',
    'Munich': 'Munich is a city in southern Germany, the capital of Bavaria.',
    'Milan': 'Milan is a city in northern Italy, near the Po valley.',
    'Barcelona': 'Barcelona is a city in Spain on the Mediterranean coast.',
    'Porto': 'Porto is a city in northern Portugal on the river Douro.',
    'Seine': 'The Seine is a river in France that flows through Paris.',
    'Rhine': 'The Rhine is a river that flows from the Alps to the North Sea.',
    'Danube': 'The Danube is a long river that flows from Germany to the Black Sea.',
    'Tagus': 'The Tagus is a river of Spain and Portugal that reaches the sea at Lisbon.',
    'Vistula': 'The Vistula is the longest river of Poland.',
    'Po': 'The Po is the longest river of Italy.',
    'French': 'French is a Romance language spoken in France and Belgium.',
    'German': 'German is a Germanic language spoken in Germany, Austria and Switzerland.',
    'Italian': 'Italian is a Romance language spoken in Italy and Switzerland.',
    'Spanish': 'Spanish is a Romance language spoken in Spain.',
    'Portuguese': 'Portuguese is a Romance language spoken in Portugal.',
    'Dutch': 'Dutch is a Germanic language spoken in the Netherlands and Belgium.',
}


def flag(rng: np.random.Generator) -> Image.Image:
    """Three stripes (vertical or horizontal) in three different seeded colours."""
    colours = [PALETTE[i] for i in rng.choice(len(PALETTE), size=3, replace=False)]
    img = Image.new('RGB', (SIZE, SIZE))
    draw = ImageDraw.Draw(img)
    vertical = bool(rng.integers(2))
    for i, colour in enumerate(colours):
        a, b = i * SIZE // 3, (i + 1) * SIZE // 3 - 1
        box = (a, 0, b, SIZE - 1) if vertical else (0, a, SIZE - 1, b)
        draw.rectangle(box, fill=colour)
    return img


def skyline(rng: np.random.Generator) -> Image.Image:
    """Grey blocks of seeded heights against a blue sky, with a few windows."""
    img = Image.new('RGB', (SIZE, SIZE), (135, 190, 235))
    draw = ImageDraw.Draw(img)
    x = 0
    while x < SIZE:
        width = int(rng.integers(5, 11))
        top = int(rng.integers(10, 36))
        grey = int(rng.integers(70, 150))
        draw.rectangle((x, top, x + width - 2, SIZE - 1), fill=(grey, grey, grey + 10))
        for wy in range(top + 3, SIZE - 3, 6):
            draw.point((x + 2, wy), fill=(250, 230, 120))
        x += width
    return img


def river(rng: np.random.Generator) -> Image.Image:
    """A wavy blue line of seeded phase and amplitude on green."""
    img = Image.new('RGB', (SIZE, SIZE), (70, 150, 60))
    draw = ImageDraw.Draw(img)
    phase, amplitude = rng.uniform(0, 2 * np.pi), rng.uniform(4, 12)
    xs = np.arange(SIZE)
    ys = SIZE / 2 + amplitude * np.sin(phase + xs * 2 * np.pi / SIZE * rng.uniform(1, 2))
    draw.line([(int(x), int(y)) for x, y in zip(xs, ys)], fill=(40, 90, 220), width=4)
    return img


DRAW = {'country': flag, 'city': skyline, 'river': river}


def write_tsv(path: str, header: Sequence[str], rows: List[Sequence[object]]) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(f'# {line}\n' for line in header))
        f.write(''.join('\t'.join(str(v) for v in row) + '\n' for row in rows))


def main(seed: int = 0) -> None:
    """Writes ``raw/`` next to this script.

    Args:
        seed (int): Seed of the colours, heights and waves.
    """
    with open(osp.join(HERE, 'entities.txt'), encoding='utf-8') as f:
        names: List[str] = [line.strip() for line in f if line.strip()]
    raw = osp.join(HERE, 'raw')
    os.makedirs(osp.join(raw, 'images'), exist_ok=True)
    rng = np.random.default_rng(seed)

    image_rows: List[Tuple[str, str]] = []
    for name in names:
        k = kind(name)
        if not k:
            continue  # the languages and Europe have no picture
        files = [f'{name}.png'] + ([f'{name}_2.png'] if name in SECOND_PICTURE else [])
        for file in files:
            DRAW[k](rng).save(osp.join(raw, 'images', file), optimize=True)
            image_rows.append((name, f'images/{file}'))
        if name == 'Lyon':  # not an image: skipped and counted when featurized
            with open(osp.join(raw, 'images', 'Lyon_broken.png'), 'wb') as f:
                f.write(b'this is not a PNG\n')
            image_rows.append((name, 'images/Lyon_broken.png'))
    write_tsv(osp.join(raw, 'images.tsv'),
              ['entity<TAB>image path, relative to this file; several rows per entity allowed',
               '(their features are pooled); made by make_raw_inputs.py'], image_rows)

    write_tsv(osp.join(raw, 'descriptions.tsv'),
              ['entity<TAB>description; made by make_raw_inputs.py'],
              [(n, DESCRIPTIONS[n]) for n in names if n not in NO_DESCRIPTION])

    attribute_rows: List[Tuple[str, str, object]] = []
    for name in names:
        if name in COUNTRIES:
            area, population = COUNTRY_FACTS[name]
            attribute_rows += [(name, 'area_km2', area), (name, 'population', population)]
        elif name in COORDINATES:
            lat, lon = COORDINATES[name]
            attribute_rows += [(name, 'latitude', lat), (name, 'longitude', lon),
                               (name, 'population', CITY_POPULATION[name])]
            if name in CITY_FOUNDED:
                attribute_rows.append((name, 'founded', CITY_FOUNDED[name]))
        elif name in RIVERS:
            attribute_rows.append((name, 'length_km', RIVER_LENGTH[name]))
    write_tsv(osp.join(raw, 'attributes.tsv'),
              ['entity<TAB>attribute<TAB>value: a number or a date (YYYY, YYYY-MM-DD);',
               'made by make_raw_inputs.py'], attribute_rows)

    size = sum(osp.getsize(osp.join(d, f)) for d, _, fs in os.walk(raw) for f in fs)
    pictures = len({n for n, _ in image_rows})
    print(f"wrote {len(image_rows)} image rows ({pictures} entities, 1 broken file), "
          f"{len(names) - len(NO_DESCRIPTION)} descriptions and {len(attribute_rows)} "
          f"attribute values to {raw} ({size / 1024:.1f} KiB)")


if __name__ == '__main__':
    main()
