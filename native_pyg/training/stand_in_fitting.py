r"""Fitting NativE's :class:`~native_pyg.nn.StructureStandIn` after training."""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from native_pyg.loader.neighbor_loader import TrainingGraph
from native_pyg.nn import NativE
from native_pyg.nn.comat import frozen
from native_pyg.nn.modes import evaluating
from native_pyg.nn.structure_stand_in import stand_in_terms
from native_pyg.training.losses import self_adversarial_loss
from native_pyg.training.optimizers import dense_adam


def fit_structure_stand_in(model: NativE, triples: Tensor, epochs: int = 10, batch_size: int = 1024,
                           num_negatives: int = 32, lr: float = 1e-3,
                           adv_temperature: float = 2.0, regression: float = 1.0,
                           seed: int = 0, progress: bool = False) -> List[float]:
    r"""Fits ``model.stand_in`` with the model frozen, its score as the
    critic, as CoMAT's generator step does, then marks it fitted.

    Per training triple :math:`(h, r, t)`, one side :math:`e \in \{h, t\}`
    (drawn with probability 1/2) is *stood in*: its structural embedding is
    replaced by :math:`\hat{\mathbf{e}}_s` generated from its features and
    fused by the model's ReDAF as if present. Against :math:`K` uniformly
    drawn entities, also stood in, replacing the other side, the stand-in
    minimises the self-adversarial loss

    .. math::
        \mathcal{L} = \tfrac{1}{2}\Big(-\log\sigma(S(\hat e, r, o))
        - \sum_i p_i \log\sigma(-S(\hat e, r, \hat n_i))\Big)
        + \lambda \|\hat{\mathbf{e}}_s - \mathbf{e}_s\|^2,

    so a stood-in entity learns to reach its partners, not to crowd other
    entities' queries as a distractor (it is scored as a candidate at
    evaluation) and to stay near the structure it stands in for. Only
    entities without training triples use the stand-in afterwards (see
    :class:`~native_pyg.nn.NativE`).

    The structure :math:`\mathbf{e}_s` it regresses to, and the partners
    and negatives it is scored with, are those a training step sees: with
    the lookup table, the table's rows (modality embeddings computed once,
    no graph involved); with a structural encoder, the encoder's output
    (in evaluation mode) over the model's training graph minus the step's
    own triples in both directions, as a whole-graph training step encodes
    it (:meth:`~native_pyg.data.TrainingGraph.full_batch` entered with
    :meth:`NativE.subgraph <native_pyg.nn.NativE.subgraph>`), so what it
    fits to matches what an entity without triples meets at test time: no
    edge of the triple being scored. The model's mode is restored
    afterwards; a fit that fails or is interrupted also restores the
    stand-in's weights and ``fitted`` flags as they were.

    Args:
        model (NativE): A trained model built with ``structure_stand_in=True``.
        triples (torch.Tensor): ``[T, 3]`` training triples.
        epochs (int, optional): Passes over ``triples``. (default: :obj:`10`)
        batch_size (int, optional): Triples per step. (default: :obj:`1024`)
        num_negatives (int, optional): :math:`K`. (default: :obj:`32`)
        lr (float, optional): Adam's learning rate. (default: :obj:`1e-3`)
        adv_temperature (float, optional): :math:`\alpha` of the
            self-adversarial weights. (default: :obj:`2.0`)
        regression (float, optional): :math:`\lambda`. (default: :obj:`1.0`)
        seed (int, optional): Seed of the draws. (default: :obj:`0`)
        progress (bool, optional): Show a progress bar. (default: :obj:`False`)

    Returns:
        The mean loss of each epoch.
    """
    stand_in = model.stand_in
    if stand_in is None:
        raise ValueError("the model has no structure stand-in (build it with "
                         "structure_stand_in=True, model.structure_stand_in=true in a config)")
    if epochs < 1:
        raise ValueError(f"the stand-in needs at least one epoch, got {epochs}")
    before = {k: v.clone() for k, v in stand_in.state_dict().items()}
    try:
        with evaluating(model):
            return _fit(model, stand_in, triples, epochs, batch_size, num_negatives, lr,
                        adv_temperature, regression, seed, progress)
    except BaseException:  # an interrupted fit leaves the stand-in as it was
        stand_in.load_state_dict(before)
        raise


def _fit(model: NativE, stand_in, triples, epochs: int, batch_size: int, num_negatives: int,
         lr: float, adv_temperature: float, regression: float, seed: int,
         progress: bool) -> List[float]:
    stand_in.fitted.fill_(False)  # the real structure of every training entity below
    device = model.device
    graph = None if model.structural_encoder is None else model.inputs.training_graph()
    if graph is None:  # the table: no edges, the same embeddings at every step
        with torch.no_grad():
            emb, mask = model.modality_embeddings(None)
    triples = torch.as_tensor(triples).long().to(device)
    gen = torch.Generator().manual_seed(seed)
    optimizer = dense_adam(stand_in.parameters(), lr)

    losses = []
    with frozen(model, keep=stand_in):
        for _ in tqdm(range(epochs), desc='structure stand-in', unit='epoch',
                      disable=None if progress else True):
            total, steps = 0.0, 0
            for batch in torch.randperm(triples.size(0), generator=gen).split(batch_size):
                step = triples[batch.to(device)]
                h, r, t = step.unbind(1)
                size = h.numel()
                side = (torch.rand(size, generator=gen) < 0.5).to(device)  # True: h stood in
                neg_index = torch.randint(0, model.num_entities, (size, num_negatives),
                                    generator=gen).to(device)
                if graph is None:
                    pos, neg, gap = stand_in_terms(model, emb, mask, h, r, t, neg_index, side)
                else:  # rows of the step's entities, encoded without its triples
                    step_emb, step_mask, (h_row, t_row, neg_row) = _step_embeddings(
                        model, graph, step, neg_index, ~side)
                    pos, neg, gap = stand_in_terms(model, step_emb, step_mask, h_row, r, t_row,
                                                   neg_row, side)
                loss = (self_adversarial_loss(pos.float(), neg.float(), adv_temperature)
                        + regression * gap.float().mean())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, steps = total + float(loss.detach()), steps + 1
            losses.append(total / max(steps, 1))
    stand_in.fitted.fill_(True)
    return losses


def _step_embeddings(model: NativE, graph: TrainingGraph, pos: Tensor, neg_index: Tensor,
                     corrupt_head: Tensor) -> Tuple[Tensor, Tensor, List[Tensor]]:
    """``(emb, mask, [head rows, tail rows, negative rows])``
    (:meth:`NativE.embed_entities`) of a fitting step's entities, with the
    structural encoder run over ``graph`` minus the step's triples ``pos``
    ``[B, 3]`` (both directions), as a whole-graph training step runs it."""
    h, _, t = pos.unbind(1)
    step = graph.full_batch(pos, neg_index, corrupt_head)
    with torch.no_grad(), model.subgraph(**step.subgraph_kwargs()):
        return model.embed_entities(h, t, neg_index)
