r"""Entity inputs whose feature rows stay in a feature store (e.g. memory-mapped
on disk, :class:`~native_pyg.data.feature_store.DiskFeatureStore`) and are
read by entity id, so a model's step reads the rows of its own entities
only and a graph's features need not fit in memory."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor

from native_pyg.nn.entity_inputs import EntityInputs, RowStore
from native_pyg.nn.missing import Missing


class StoredEntityInputs(EntityInputs):
    r""":class:`EntityInputs` over a PyG :class:`~torch_geometric.data.FeatureStore`
    holding, per modality ``m``, rows ``(m, 'x')`` ``[N, d_m]`` and a mask
    ``(m, 'mask')`` ``[N]``. :meth:`rows` and :meth:`mask` fetch the asked
    entities through :meth:`~torch_geometric.data.FeatureStore.get_tensor`;
    only entities added after training (:meth:`append`) are held in memory.
    The structure mask and the training graph are held as in
    :class:`EntityInputs`.

    .. code-block:: python

        store = DiskFeatureStore('store')   # written by FeatureStoreWriter
        inputs = StoredEntityInputs(store, num_relations=R)
        model = NativE(store.num_entities, R, 100, inputs=inputs,
                       edge_index=edge_index, edge_type=edge_type)

    Args:
        store (RowStore): The feature store; its ``num_entities`` and
            ``dims`` give :math:`N` and the feature sizes, its ``identity()``
            tells a rewritten store (as
            :class:`~native_pyg.data.feature_store.DiskFeatureStore` has them).
        num_relations (int): Number of relations :math:`R`.
        modalities (list[str], optional): The store's modalities to use.
            (default: :obj:`None`, all)
        missing (str, optional): ``'mask'`` or ``'zero'``; ``'random'``
            needs the statistics of every row and is refused.
            (default: ``'mask'``)
    """

    def __init__(self, store: RowStore, num_relations: int,
                 modalities: Optional[Sequence[str]] = None, missing: str = 'mask'):
        if not isinstance(store, RowStore):
            raise TypeError(f"a {type(store).__name__} is not a feature store entity inputs can "
                            f"read: it needs get_tensor, num_entities, dims and identity() "
                            f"(see native_pyg.nn.entity_inputs.RowStore)")
        dims = dict(store.dims)
        modalities = list(dims) if modalities is None else list(modalities)
        if unknown := sorted(set(modalities) - set(dims)):
            raise ValueError(f"modalities {unknown} are not in the feature store "
                             f"(it has {sorted(dims)})")
        if Missing.of(missing).drawn:
            raise ValueError("missing='random' draws stand-in rows from the statistics of all "
                             "rows; with a feature store use missing='mask' or 'zero'")
        super().__init__(store.num_entities, num_relations, {m: dims[m] for m in modalities},
                         missing=missing)
        self.store = store
        self.stored = int(store.num_entities)  # rows in the store; added ones follow

    def _split(self, index: Tensor):
        index = torch.as_tensor(index).long()
        in_store = index < self.stored
        return index, in_store, bool(in_store.all())

    def rows(self, modality: str, index: Optional[Tensor] = None) -> Tensor:
        added = self.get_buffer(f'x_{modality}')  # rows of added entities only
        if index is None:
            return torch.cat([self.store.get_tensor(modality, 'x', index=None).to(added), added])
        index, in_store, only_store = self._split(index)
        if only_store:
            return self.store.get_tensor(modality, 'x', index=index.cpu()).to(added)
        out = added.new_empty(index.numel(), added.size(1))
        out[in_store] = self.store.get_tensor(modality, 'x', index=index[in_store].cpu()).to(added)
        out[~in_store] = added[index[~in_store] - self.stored]
        return out

    def mask(self, modality: str, index: Optional[Tensor] = None) -> Tensor:
        added = self.get_buffer(f'mask_{modality}')
        if index is None:
            return torch.cat([self.store.get_tensor(modality, 'mask', index=None).to(added.device), added])
        index, in_store, only_store = self._split(index)
        if only_store:
            return self.store.get_tensor(modality, 'mask', index=index.cpu()).to(added.device)
        out = added.new_zeros(index.numel())
        out[in_store] = self.store.get_tensor(modality, 'mask',
                                              index=index[in_store].cpu()).to(added.device)
        out[~in_store] = added[index[~in_store] - self.stored]
        return out

    def set_features(self, features: Mapping[str, Tensor],
                     masks: Optional[Mapping[str, Tensor]] = None) -> None:
        if features:
            raise ValueError("the feature rows live in the feature store; write a new store "
                             "(FeatureStoreWriter) to change them")

    def append(self, features: Mapping[str, Tensor],
               masks: Optional[Mapping[str, Tensor]] = None,
               names: Optional[Sequence[str]] = None) -> Tensor:
        k, features, masks = self._check_added(features, masks)
        old = self.num_entities
        names = [f'added_{old + i}' for i in range(k)] if names is None else list(names)
        if len(names) != k:
            raise ValueError(f"{len(names)} names given for {k} added entities")
        for m in self.modalities:  # the store stays as it is; added rows are kept here
            x, mask = self.get_buffer(f'x_{m}'), self.get_buffer(f'mask_{m}')
            self.register_buffer(f'x_{m}', torch.cat([x, features[m].to(x)]), persistent=False)
            self.register_buffer(f'mask_{m}', torch.cat([mask, masks[m].to(mask.device)]),
                                 persistent=False)
        return self._record_added(features, masks, names)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_entities}, modalities={self.modalities}, '
                f'store={type(self.store).__name__}, edges={self.edge_index.size(1)}, '
                f'added={len(self.added_names)})')
