"""The embedded default dataset: a generated multi-modal KG."""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch
from torch_geometric.data import HeteroData

from native_pyg.data.schema import build_mmkg
from native_pyg.datasets.safe_cache import SafeCacheDataset

#: modality -> (feature dimension, coverage, noise level)
DEFAULT_MODALITIES: Dict[str, Tuple[int, float, float]] = {
    'image': (64, 0.85, 0.4),
    'text': (32, 0.60, 0.2),
    'numeric': (8, 0.30, 0.6),
}


def generate_synthetic_mmkg(num_entities: int = 2000, num_relations: int = 10,
                            latent_dim: int = 4, heads_per_relation: float = 0.5,
                            cold_fraction: float = 0.03, train_fraction: float = 0.6,
                            eval_fraction: float = 0.1,
                            modality_specs: Optional[Dict[str, Tuple[int, float, float]]] = None,
                            seed: int = 0) -> HeteroData:
    r"""Generates an MMKG whose facts follow rotations of latent entities.

    Every entity :math:`e` has a latent complex vector
    :math:`\mathbf{z}_e \in \mathbb{C}^k` (unit modulus per coordinate) and
    every relation a rotation :math:`\mathbf{r}`. For a fraction of heads per
    relation, 1-3 tails (a fan-out per relation) are drawn among the entities
    nearest to :math:`\mathbf{z}_h \circ \mathbf{r}`. Each feature modality ``m`` is a
    noisy random projection of :math:`[\Re\mathbf{z}_e, \Im\mathbf{z}_e]`
    with its own dimension and coverage, so the modalities carry information
    that the sparse training graph lacks. A ``cold_fraction`` of entities
    appears only in valid/test triples (only features can place them), and
    some entities have no feature modality at all. Of the other facts,
    ``train_fraction`` are training triples, ``eval_fraction`` each go to
    valid and test, and the rest stay unknown.

    The same ``seed`` gives identical data.
    """
    g = torch.Generator().manual_seed(seed)
    specs = DEFAULT_MODALITIES if modality_specs is None else modality_specs
    n, k = num_entities, latent_dim
    z = torch.polar(torch.ones(n, k), 2 * math.pi * torch.rand(n, k, generator=g))
    rot = torch.polar(torch.ones(num_relations, k),
                      2 * math.pi * torch.rand(num_relations, k, generator=g))

    triples = []
    num_heads = max(1, int(heads_per_relation * n))
    for r in range(num_relations):  # a loop over relations only; each step is a batch
        heads = torch.randperm(n, generator=g)[:num_heads]
        dist = torch.cdist(torch.view_as_real(z[heads] * rot[r]).flatten(1),
                           torch.view_as_real(z).flatten(1))
        dist[torch.arange(num_heads), heads] = float('inf')  # no self loops
        # fan-out 1-3 tails per head, drawn among the 2f+1 nearest: 1-1 and 1-N relations
        fan = int(torch.randint(1, 4, (1,), generator=g))
        near = dist.topk(2 * fan + 1, largest=False).indices
        pick = torch.rand(num_heads, 2 * fan + 1, generator=g).argsort(1)[:, :fan]
        tails = near.gather(1, pick)
        heads = heads.unsqueeze(1).expand(-1, fan)
        triples.append(torch.stack([heads, torch.full_like(heads, r), tails], 2).flatten(0, 1))
    triples = torch.unique(torch.cat(triples), dim=0)
    triples = triples[torch.randperm(triples.size(0), generator=g)]

    # Cold entities: all their triples go to valid/test.
    cold = torch.zeros(n, dtype=torch.bool)
    cold[torch.randperm(n, generator=g)[:int(cold_fraction * n)]] = True
    touches_cold = cold[triples[:, 0]] | cold[triples[:, 2]]
    warm, held = triples[~touches_cold], triples[touches_cold]
    # Of the other facts, some are held out for evaluation and the rest stay
    # unknown: a sparse, incomplete training graph.
    n_train, n_eval = int(train_fraction * warm.size(0)), int(eval_fraction * warm.size(0))
    train = warm[:n_train]
    rest = torch.cat([warm[n_train:n_train + 2 * n_eval], held])
    rest = rest[torch.randperm(rest.size(0), generator=g)]
    valid, test = rest[:rest.size(0) // 2], rest[rest.size(0) // 2:]

    latent = torch.view_as_real(z).flatten(1)  # [n, 2k]
    features, masks = {}, {}
    for m, (dim, coverage, noise) in specs.items():
        proj = torch.randn(2 * k, dim, generator=g) / math.sqrt(2 * k)
        x = latent @ proj + noise * torch.randn(n, dim, generator=g)
        masks[m] = torch.rand(n, generator=g) < coverage
        features[m] = x * masks[m].unsqueeze(1)
    data = build_mmkg(n, num_relations, train, valid, test,
                      entity_names=[f'entity_{i}' for i in range(n)],
                      relation_names=[f'relation_{r}' for r in range(num_relations)],
                      features=features, masks=masks)
    data.name = 'synthetic'
    return data


class SyntheticMMKG(SafeCacheDataset):
    r"""The embedded default dataset: a generated multi-modal KG (see
    :func:`generate_synthetic_mmkg`), in the spirit of PyG's
    :class:`~torch_geometric.datasets.FakeDataset`. Needs no download; with
    ``root=None`` it lives in memory only, with a ``root`` it is cached there.

    Args:
        root (str, optional): Cache directory. (default: :obj:`None`, no cache)
        seed (int): Random seed; the same seed gives identical data.
        transform, pre_transform (callable, optional): PyG transforms.
        force_reload (bool): Regenerate even if cached.
        **kwargs: Generator options of :func:`generate_synthetic_mmkg`
            (``num_entities``, ``num_relations``, ``latent_dim``, ...).
    """
    def __init__(self, root: Optional[str] = None, seed: int = 0,
                 transform: Optional[Callable] = None, pre_transform: Optional[Callable] = None,
                 force_reload: bool = False, **kwargs) -> None:
        self.seed, self.kwargs = seed, kwargs
        self._cached = root is not None
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        if root is None:
            data = generate_synthetic_mmkg(seed=seed, **kwargs)
            if pre_transform is not None:
                data = pre_transform(data)
            self.data, self.slices = self.collate([data])
        else:
            self.load(self.processed_paths[0], data_cls=HeteroData)

    @property
    def has_process(self) -> bool:  # in memory only: nothing to cache
        return self._cached

    @property
    def raw_file_names(self):
        return []

    @property
    def processed_file_names(self) -> str:
        opts = '_'.join(f'{k}{v}' for k, v in sorted(self.kwargs.items()))
        return f'synthetic_seed{self.seed}{"_" + opts if opts else ""}.pt'

    def process(self) -> None:
        data = generate_synthetic_mmkg(seed=self.seed, **self.kwargs)
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])

    @property
    def modalities(self):
        from native_pyg.data.schema import modalities
        return modalities(self._data)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(seed={self.seed}, modalities={self.modalities})'
