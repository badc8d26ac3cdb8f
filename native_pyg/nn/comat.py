r"""CoMAT: collaborative modality adversarial training (WGAN-GP).

A generator produces fake modality embeddings from *all* of an entity's
modality embeddings plus noise; fake joint embeddings fuse the real
structural embedding with them through the model's ReDAF, and the critic is
the KGC score :math:`S` itself. For a batch of positives, with
:math:`\hat h, \hat t` the fake joint embeddings and the three fake variants
:math:`k \in \{(\hat h, r, t), (h, r, \hat t), (\hat h, r, \hat t)\}`:

.. math::
    \mathcal{L}_{D} &= \mathcal{L}_{kgc} + \mu \sum_k
        \big(\mathbb{E}[S(\mathrm{fake}_k)] - \mathbb{E}[S(h, r, t)]\big)
        + \mu\,\beta\,\mathrm{GP}, \\
    \mathcal{L}_{G} &= \frac{1}{3}\sum_k \mathbb{E}[\gamma - S(\mathrm{fake}_k)].

CoMAT owns its fake fusion (:func:`fake_joint_embeddings`,
:func:`adversarial_embeddings`), built on the model's public embedding and
fusion methods. The functions here return the :math:`\sum_k` term (:func:`critic_loss`),
:math:`\mathrm{GP}` (:func:`gradient_penalty`) and :math:`\mathcal{L}_G`
(:func:`generator_loss`); the trainer weights them by :math:`\mu` and
:math:`\beta` and owns the optimisers.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from native_pyg.nn.projections import STRUCTURE, check_modality_names
from native_pyg.data.relations import unpack_triples
from native_pyg.nn.native import NativE

GP_ON = ('both', 'head')


class CoMATGenerator(torch.nn.Module):
    r"""Generates one fake embedding per feature modality from the
    concatenation of all of an entity's modality embeddings (structure
    first) and Gaussian noise :math:`\mathbf{z} \sim \mathcal{N}(0, I)`:

    .. math::
        [\hat{\mathbf{e}}_{m_1} \| \dots \| \hat{\mathbf{e}}_{m_k}] =
        \mathbf{W}_2\, \mathrm{LeakyReLU}\big(\mathbf{W}_1 [\mathbf{z} \|
        \mathbf{e}_s \| \mathbf{e}_{m_1} \| \dots \| \mathbf{e}_{m_k}] +
        \mathbf{b}_1\big) + \mathbf{b}_2.

    Args:
        modalities (list[str]): The feature modalities (at least one), in
            the model's order (:attr:`NativE.feature_modalities`).
        hidden_channels (int): Entity embedding size :math:`D_e` (the
            model's :attr:`entity_dim`).
        noise_dim (int, optional): Noise size (default: :obj:`64`).
        hidden (int, optional): Hidden layer size (default: :obj:`512`).
    """

    def __init__(self, modalities: Sequence[str], hidden_channels: int,
                 noise_dim: int = 64, hidden: int = 512):
        super().__init__()
        self.modalities = check_modality_names(modalities)
        if not self.modalities:
            raise ValueError("CoMATGenerator needs at least one feature modality")
        self.hidden_channels = int(hidden_channels)
        self.noise_dim = int(noise_dim)
        self.hidden = int(hidden)
        num = len(self.modalities)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(noise_dim + (1 + num) * hidden_channels, hidden),
            torch.nn.LeakyReLU(),
            torch.nn.Linear(hidden, num * hidden_channels),
        )

    def reset_parameters(self):
        r"""Resets all learnable parameters of the module."""
        self.mlp[0].reset_parameters()
        self.mlp[2].reset_parameters()

    def forward(self, modality_embeddings: Union[Tensor, Mapping[str, Tensor]],
                noise: Optional[Tensor] = None) -> Tensor:
        r"""Fake modality embeddings.

        Args:
            modality_embeddings (torch.Tensor or dict): ``[B, 1 + |M_feat|,
                De]`` (structure first, as :meth:`NativE.modality_embeddings`
                returns) or ``{'structure': [B, De], m: [B, De], ...}``.
            noise (torch.Tensor, optional): ``[B, noise_dim]``.
                (default: :obj:`None`, fresh :math:`\mathcal{N}(0, I)` noise)

        Returns:
            ``[B, |M_feat|, De]`` fake embeddings, in :attr:`modalities` order.
        """
        if isinstance(modality_embeddings, Mapping):
            modality_embeddings = torch.stack(
                [modality_embeddings[m] for m in (STRUCTURE, *self.modalities)], dim=1)
        emb = modality_embeddings
        expected = (1 + len(self.modalities), self.hidden_channels)
        if emb.dim() != 3 or tuple(emb.shape[1:]) != expected:
            raise ValueError(f"expected modality embeddings [B, {expected[0]}, {expected[1]}], "
                             f"got {tuple(emb.shape)}")
        if noise is None:
            noise = torch.randn(emb.size(0), self.noise_dim, device=emb.device, dtype=emb.dtype)
        out = self.mlp(torch.cat([noise.to(emb.dtype), emb.flatten(1)], dim=-1))
        return out.view(emb.size(0), len(self.modalities), self.hidden_channels)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.modalities}, {self.hidden_channels}, '
                f'noise_dim={self.noise_dim}, hidden={self.hidden})')


def _as_index(model: NativE, index: Union[Tensor, int]) -> Tensor:
    return torch.as_tensor(index, device=model.device).long()


def _fake_fuse(model: NativE, emb: Tensor, mask: Tensor, index: Tensor, rel_type: Tensor,
               generator: torch.nn.Module, noise: Optional[Tensor] = None) -> Tensor:
    """Rows ``index`` of ``(emb, mask)`` with the generator's fake feature
    modality embeddings beside the real structure, fused by the model."""
    if not model.feature_modalities:
        raise ValueError("adversarial training needs at least one feature modality")
    rows, row_mask = emb[index], mask[index]
    fake = generator(rows, noise)  # [B, |M_feat|, De]
    fake_rows = torch.cat([rows[:, :1], fake.to(rows.dtype)], dim=1)
    return model.fuse(fake_rows, row_mask, rel_type)


def fake_joint_embeddings(model: NativE, generator: torch.nn.Module, entity_index: Tensor,
                          rel_type: Union[Tensor, int], noise: Optional[Tensor] = None) -> Tensor:
    r"""``[B, De]`` fake joint embeddings: the real structural embedding
    fused with the generator's fake modality embeddings (same mask, same
    ReDAF). The generator reads all of the entity's modality embeddings
    (not detached).

    Args:
        model (NativE): The model (at least one feature modality).
        generator (CoMATGenerator): The generator.
        entity_index (torch.Tensor): ``[B]`` entity ids.
        rel_type (torch.Tensor or int): ``[B]`` relations, or one for all.
        noise (torch.Tensor, optional): ``[B, noise_dim]``.
            (default: :obj:`None`, fresh noise)
    """
    entity_index = _as_index(model, entity_index).view(-1)
    emb, mask, (inv,) = model.embed_entities(entity_index)
    rel = _as_index(model, rel_type).view(-1).expand(entity_index.numel())
    return _fake_fuse(model, emb, mask, inv, rel, generator, noise)


def adversarial_embeddings(model: NativE, generator: torch.nn.Module, head_index: Tensor,
                           rel_type: Tensor, tail_index: Optional[Tensor] = None
                           ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(h, t, h_fake, t_fake)``: real and fake (fresh noise) joint
    embeddings ``[B, De]`` of a batch of positives ``(head_index, rel_type,
    tail_index)`` or ``(edge_index, edge_type)``, from one embedding of its
    unique entities."""
    h, r, t = unpack_triples(head_index, rel_type, tail_index)
    r = _as_index(model, r).view(-1)
    emb, mask, (ih, it) = model.embed_entities(h, t)
    hj, tj = model.fuse_rows(emb, mask, [(ih, r), (it, r)])
    return (hj, tj, _fake_fuse(model, emb, mask, ih, r, generator),
            _fake_fuse(model, emb, mask, it, r, generator))


def _embed(model: NativE, generator: CoMATGenerator, head_index: Tensor, rel_type: Tensor,
           tail_index: Optional[Tensor]):
    """``(rel_type, rel, (h, t), (h_fake, t_fake))`` of a batch of positives."""
    h, r, t = unpack_triples(head_index, rel_type, tail_index)
    r = _as_index(model, r)
    hj, tj, h_fake, t_fake = adversarial_embeddings(model, generator, h, r, t)
    return r, model.relation_embedding(r), (hj, tj), (h_fake, t_fake)


def _fake_scores(model: NativE, rel: Tensor, real: Tuple[Tensor, Tensor],
                 fake: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Scores of the three fake variants (h^, r, t), (h, r, t^), (h^, r, t^)."""
    (h, t), (h_fake, t_fake) = real, fake
    return (model.scorer(h_fake, rel, t), model.scorer(h, rel, t_fake),
            model.scorer(h_fake, rel, t_fake))


def _critic(model: NativE, rel: Tensor, real: Tuple[Tensor, Tensor],
            fake: Tuple[Tensor, Tensor]) -> Tensor:
    real_score = model.scorer(real[0], rel, real[1]).mean()
    return sum(s.mean() - real_score for s in _fake_scores(model, rel, real, fake))


def _penalty(model: NativE, rel_type: Tensor, real: Tuple[Tensor, Tensor],
             fake: Tuple[Tensor, Tensor], gp_on: str) -> Tensor:
    if gp_on not in GP_ON:
        raise ValueError(f"gp_on must be one of {GP_ON}, got {gp_on!r}")
    constant = model.scorer.constant_gradient_norm(gp_on)
    if constant is not None:  # e.g. RotatE: the penalty's value, with no gradient to compute
        return real[0].new_tensor((constant - 1) ** 2)
    with torch.enable_grad():  # also usable under no_grad (e.g. to monitor)
        alpha = torch.rand(real[0].size(0), 1, device=real[0].device, dtype=real[0].dtype)
        h, t = ((alpha * x.detach() + (1 - alpha) * y.detach()).requires_grad_()
                for x, y in zip(real, fake))
        score = model.score_embeddings(h, rel_type, t)
        inputs = (h, t) if gp_on == 'both' else (h,)
        grads = torch.autograd.grad(score.sum(), inputs, create_graph=True)
        norm = torch.cat(grads, dim=-1).norm(2, dim=-1)
    return ((norm - 1) ** 2).mean()


def critic_terms(model: NativE, generator: CoMATGenerator, head_index: Tensor, rel_type: Tensor,
                 tail_index: Optional[Tensor] = None, gp_on: str = 'both'
                 ) -> Tuple[Tensor, Tensor]:
    r"""``(critic, gp)``: :func:`critic_loss` and :func:`gradient_penalty`
    from one forward pass (the cheaper way to get both; same gradients)."""
    r, rel, real, fake = _embed(model, generator, head_index, rel_type, tail_index)
    return _critic(model, rel, real, fake), _penalty(model, r, real, fake, gp_on)


def critic_loss(model: NativE, generator: CoMATGenerator, head_index: Tensor, rel_type: Tensor,
                tail_index: Optional[Tensor] = None) -> Tensor:
    r"""The critic term :math:`\sum_k (\mathbb{E}[S(\mathrm{fake}_k)] -
    \mathbb{E}[S(h, r, t)])` (without :math:`\mu`) of a batch of positives,
    given as ``(head_index, rel_type, tail_index)`` or ``(edge_index,
    edge_type)``.

    Gradients: the generator's input (the real modality embeddings) is not
    detached, so backward reaches *all* trainable model parameters and also
    the generator's; step only the model's optimiser with it and zero the
    generator's gradients before its own step.
    """
    _, rel, real, fake = _embed(model, generator, head_index, rel_type, tail_index)
    return _critic(model, rel, real, fake)


def gradient_penalty(model: NativE, generator: CoMATGenerator, head_index: Tensor, rel_type: Tensor,
                     tail_index: Optional[Tensor] = None, gp_on: str = 'both') -> Tensor:
    r"""The WGAN-GP penalty :math:`\mathbb{E}[(\|\nabla S(\tilde x)\|_2 -
    1)^2]` on :math:`\tilde x = \alpha\, x_{\mathrm{real}} + (1 - \alpha)\,
    x_{\mathrm{fake}}` with :math:`\alpha \sim \mathcal{U}(0, 1)` per row,
    interpolating the (detached) joint head and tail embeddings. The norm is
    taken over the gradient w.r.t. head *and* tail jointly (``gp_on='both'``,
    the method's intent) or w.r.t. the head only (``'head'``, the reference
    code). Without :math:`\beta`.

    Gradients (``create_graph=True``): only the score function's own inputs
    that are not interpolated, i.e. the relation embeddings; for RotatE and
    TransE the gradient norm does not depend on them, so the term is a
    (finite) constant there. (The reference code also interpolates the
    relation, between two identical copies, so its penalty trains nothing.)
    """
    with torch.no_grad():  # the interpolation is detached anyway
        r, _, real, fake = _embed(model, generator, head_index, rel_type, tail_index)
    return _penalty(model, r, real, fake, gp_on)


@contextmanager
def frozen(module: torch.nn.Module, keep: torch.nn.Module) -> Iterator[None]:
    """Temporarily stops gradients to ``module``'s parameters (but ``keep``'s);
    a table that steps itself in the backward pass (``fused``, e.g. a
    sharded one) is frozen as a whole: its lookups are detached."""
    fused = [m for m in module.modules() if getattr(m, 'fused', False)]
    keep_ids = {id(p) for p in keep.parameters()} | {id(p) for m in fused
                                                     for p in m.parameters()}
    params = [p for p in module.parameters() if p.requires_grad and id(p) not in keep_ids]
    for p in params:
        p.requires_grad_(False)
    for m in fused:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        for m in fused:
            m.requires_grad_(True)


def generator_loss(model: NativE, generator: CoMATGenerator, head_index: Tensor, rel_type: Tensor,
                   tail_index: Optional[Tensor] = None) -> Tensor:
    r"""The generator loss :math:`\frac{1}{3}\sum_k \mathbb{E}[\gamma -
    S(\mathrm{fake}_k)]` from a fresh forward pass with fresh noise.

    Gradients: the generator's parameters only (the model's parameters are
    frozen while the loss is built), so it can be back-propagated right
    after the critic step without touching the model.
    """
    with frozen(model, keep=generator):
        _, rel, real, fake = _embed(model, generator, head_index, rel_type, tail_index)
        scores = _fake_scores(model, rel, real, fake)
        return sum((model.margin - s).mean() for s in scores) / len(scores)
