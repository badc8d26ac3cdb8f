r"""Entities added to a trained :class:`~native_pyg.nn.NativE` without
retraining, and the state dict that keeps them: a checkpoint of a model
with added entities restores them, and checkpoints of older layouts load
with their keys mapped (:func:`~native_pyg.nn.legacy.upgrade_state_dict`)."""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

from torch import Tensor

from native_pyg.nn.legacy import upgrade_state_dict


class EntityAddition:
    """Adding entities, part of a model that holds its entity ``inputs``, the
    structural table ``entity_emb``, a ``scorer`` (whose ``init_entity_``
    draws new rows) and a ``seed``."""

    def add_entities(self, features: Mapping[str, Tensor],
                     masks: Optional[Mapping[str, Tensor]] = None,
                     names: Optional[Sequence[str]] = None) -> Tensor:
        r"""Adds entities that have modality features but no training triple
        (no retraining): their structure is missing, so their joint
        embedding is ReDAF's fusion of their projected features, and they
        are scored and ranked like every other entity. Existing entities'
        scores do not change. Their features, masks and names are kept in
        :meth:`state_dict` (:meth:`load_state_dict` restores them).

        Args:
            features (dict[str, torch.Tensor]): Modality to ``[k, d_m]`` (or
                ``[d_m]`` for one entity) raw features; modalities left out
                are missing for the added entities.
            masks (dict[str, torch.Tensor], optional): Modality to ``[k]``
                presence. (default: non-zero rows)
            names (list[str], optional): Names of the added entities.
                (default: ``'added_<id>'``)

        Returns:
            ``[k]`` ids of the added entities (``N, ..., N + k - 1``).
        """
        old = self.inputs.num_entities
        ids = self.inputs.append(features, masks, names)
        # the added rows' structure is masked; their table rows are drawn only so that
        # the table stays the scorer's shape (seeded: the same model, the same rows)
        self.entity_emb = self.entity_emb.extended(ids.numel(), self.scorer.init_entity_,
                                                   self.seed + old)
        return ids

    @property
    def added_entity_names(self) -> List[str]:
        """Names of the entities added after training (:meth:`add_entities`),
        in id order (their ids follow the dataset's)."""
        return self.inputs.added_names

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True,
                        assign: bool = False):
        """:meth:`torch.nn.Module.load_state_dict`, after mapping the keys of
        older checkpoints (:func:`upgrade_state_dict`) and re-adding the
        entities added to the saved model (:meth:`add_entities`)."""
        state_dict = upgrade_state_dict(state_dict)
        added = self.inputs.added_state(state_dict, prefix='inputs.added.')
        if added is not None:
            features, masks, names = added
            self.add_entities(features, masks, names)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
