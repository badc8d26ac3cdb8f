r"""Score functions :math:`S(h, r, t)` over (joint) entity embeddings.

Every scorer is a parameter-free :class:`torch.nn.Module`: the embeddings
live in the model (:class:`~native_pyg.nn.NativE`), which asks the scorer for
their sizes (:attr:`KGScorer.entity_dim`, :attr:`KGScorer.relation_dim`) and
their initialisation (:meth:`KGScorer.init_entity_`,
:meth:`KGScorer.init_relation_`). One interface for all of them:

* ``scorer(head [..., De], rel [..., Dr], tail [..., De]) -> [...]`` scores
  aligned (broadcast) batches, e.g. ``head [B, 1, De]`` against
  ``tail [B, K, De]``;
* ``scorer.score_tails(head [B, De], rel [B, Dr], candidates [N, De])`` and
  ``scorer.score_heads(rel [B, Dr], tail [B, De], candidates [N, De])``
  score ``B`` queries against ``N`` candidates (1-vs-all) -> ``[B, N]``, in
  chunks of candidates so that no intermediate exceeds a memory budget;
  they are ``scorer.against(scorer.query(entity, rel, tails), candidates)``,
  so a query scored against many candidate blocks is prepared once.

Higher scores mean more plausible triples.
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor

from native_pyg.kernels.distance_kernels import (ModulusDistance, complex_modulus_sum,
                                            compiled_distances_on, modulus_distance_blocked,
                                            modulus_distance_compiled)

#: elements of the largest ``[B, chunk, De]`` intermediate when ``chunk_size`` is ``None``
CHUNK_BUDGET = 2 ** 25


def _chunks(num_candidates: int, num_queries: int, width: int,
            chunk_size: Optional[int]) -> Iterator[slice]:
    if chunk_size is None:
        chunk_size = max(1, CHUNK_BUDGET // max(1, num_queries * width))
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    for start in range(0, num_candidates, chunk_size):
        yield slice(start, min(start + chunk_size, num_candidates))


def _chunked_scores(score_chunk, num_candidates: int, query: Tensor, width: int,
                    chunk_size: Optional[int]) -> Tensor:
    """``[B, N]`` scores of ``B`` = ``query.size(0)`` queries, concatenated
    from ``score_chunk(candidate_slice)`` over memory-bounded chunks."""
    out = [score_chunk(sl) for sl in _chunks(num_candidates, query.size(0), width, chunk_size)]
    return torch.cat(out, dim=1) if out else query.new_zeros(query.size(0), 0)


class KGScorer(torch.nn.Module):
    r"""Base class of the score functions.

    Subclasses implement :meth:`forward`; the 1-vs-all methods default to
    chunked broadcasting of :meth:`forward` and are overridden where a
    cheaper exact form exists.

    Args:
        hidden_channels (int): The embedding size :math:`d` (complex scorers
            use :math:`2d` real numbers per entity).
        margin (float, optional): The margin :math:`\gamma` (default:
            :obj:`12.0`).
        epsilon (float, optional): The :math:`\epsilon` of the
            initialisation range :math:`(\gamma + \epsilon) / d`
            (default: :obj:`2.0`).
    """
    #: entity size as a multiple of ``hidden_channels``
    entity_factor: int = 1
    #: relation size as a multiple of ``hidden_channels``
    relation_factor: int = 1

    def __init__(self, hidden_channels: int, margin: float = 12.0, epsilon: float = 2.0):
        super().__init__()
        if hidden_channels <= 0:
            raise ValueError(f"hidden_channels must be positive, got {hidden_channels}")
        self.hidden_channels = int(hidden_channels)
        self.margin = float(margin)
        self.epsilon = float(epsilon)

    @property
    def entity_dim(self) -> int:
        """Size :math:`D_e` of an entity embedding."""
        return self.entity_factor * self.hidden_channels

    @property
    def relation_dim(self) -> int:
        """Size :math:`D_r` of a relation embedding."""
        return self.relation_factor * self.hidden_channels

    @property
    def embedding_range(self) -> float:
        r""":math:`(\gamma + \epsilon) / d`."""
        return (self.margin + self.epsilon) / self.hidden_channels

    def reset_parameters(self):
        """Scorers hold no parameters."""

    def init_entity_(self, weight: Tensor) -> Tensor:
        """Initialises an entity embedding matrix in place (default: Xavier)."""
        return torch.nn.init.xavier_uniform_(weight)

    def init_relation_(self, weight: Tensor) -> Tensor:
        """Initialises a relation embedding matrix in place (default: Xavier)."""
        return torch.nn.init.xavier_uniform_(weight)

    def forward(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        r"""Scores aligned (broadcastable) batches.

        Args:
            head (torch.Tensor): ``[..., De]`` head embeddings.
            rel (torch.Tensor): ``[..., Dr]`` relation embeddings.
            tail (torch.Tensor): ``[..., De]`` tail embeddings.

        Returns:
            ``[...]`` scores (the broadcast batch shape).
        """
        raise NotImplementedError

    def query(self, entity: Tensor, rel: Tensor, tails: bool) -> object:
        r"""The prepared form of ``B`` queries :math:`(e_b, r_b, ?)`
        (``tails``) or :math:`(?, r_b, e_b)` for :meth:`against`: e.g.
        RotatE's rotated :math:`e_b \circ r_b`. The default keeps the inputs
        and scores through :meth:`forward`.

        Args:
            entity (torch.Tensor): ``[B, De]`` heads (``tails``) or tails.
            rel (torch.Tensor): ``[B, Dr]``.
            tails (bool): Candidates are tails (else heads).
        """
        return entity, rel, tails

    def against(self, query: object, candidates: Tensor,
                chunk_size: Optional[int] = None) -> Tensor:
        r"""``[B, N]`` scores of prepared queries (:meth:`query`) against
        ``[N, De]`` candidates, in chunks of ``chunk_size`` candidates
        (default: every ``[B, chunk, De]`` intermediate kept under
        :data:`CHUNK_BUDGET` elements)."""
        entity, rel, tails = query
        e, r = entity[:, None], rel[:, None]
        return _chunked_scores(
            lambda sl: self(e, r, candidates[None, sl]) if tails else
            self(candidates[None, sl], r, e), candidates.size(0), entity, self.entity_dim,
            chunk_size)

    def score_tails(self, head: Tensor, rel: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""Scores every candidate as the tail of every query
        :math:`(h_b, r_b, ?)`.

        Args:
            head (torch.Tensor): ``[B, De]``.
            rel (torch.Tensor): ``[B, Dr]``.
            candidates (torch.Tensor): ``[N, De]``.
            chunk_size (int, optional): Candidates per chunk (see :meth:`against`).

        Returns:
            ``[B, N]`` scores.
        """
        return self.against(self.query(head, rel, True), candidates, chunk_size)

    def score_corrupted(self, head: Tensor, rel: Tensor, tail: Tensor, candidates: Tensor,
                        corrupt_head: Tensor) -> Tensor:
        r"""Scores ``K`` corruptions of each of ``B`` triples: row ``b``
        scores :math:`(c_{b,k}, r_b, t_b)` where ``corrupt_head[b]`` and
        :math:`(h_b, r_b, c_{b,k})` elsewhere.

        Args:
            head (torch.Tensor): ``[B, De]``.
            rel (torch.Tensor): ``[B, Dr]``.
            tail (torch.Tensor): ``[B, De]``.
            candidates (torch.Tensor): ``[B, K, De]`` replacing entities.
            corrupt_head (torch.Tensor): ``[B]`` or ``[B, K]`` bool.

        Returns:
            ``[B, K]`` scores.
        """
        flip = corrupt_head.view(corrupt_head.size(0), -1, 1)
        heads = torch.where(flip, candidates, head.unsqueeze(1))
        tails = torch.where(flip, tail.unsqueeze(1), candidates)
        return self(heads, rel.unsqueeze(1), tails)

    def constant_gradient_norm(self, wrt: str = 'both') -> Optional[float]:
        r""":math:`\|\nabla S\|_2` w.r.t. the head (``wrt='head'``) or head
        and tail (``'both'``) where it does not depend on the embeddings
        (almost everywhere), else ``None``. Lets the WGAN-GP penalty skip a
        double backward that could only train nothing."""
        return None

    def score_heads(self, rel: Tensor, tail: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""Scores every candidate as the head of every query
        :math:`(?, r_b, t_b)`; arguments as in :meth:`score_tails`."""
        return self.against(self.query(tail, rel, False), candidates, chunk_size)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(hidden_channels={self.hidden_channels}, '
                f'margin={self.margin})')


class RotatE(KGScorer):
    r"""The RotatE score: a relation rotates the head in complex space,

    .. math::
        S(h, r, t) = \gamma - \sum_{i=1}^{d}
        \left| h_i \, e^{\mathrm{i}\,\phi_{r,i}} - t_i \right|,
        \qquad \phi_r = \frac{\pi\, \mathbf{r}}{(\gamma + \epsilon) / d},

    with entity embeddings ``[re | im]`` of size :math:`2d` and relation
    embeddings of size :math:`d` storing *scaled* phases, initialised as
    :math:`\mathcal{U}(\pm(\gamma+\epsilon)/d)` (relations) and
    :math:`\mathcal{U}(\pm(\gamma+\epsilon)/2d)` (entities). The scaling
    fixes what a learning rate means and is kept from the reference
    implementation.

    Args:
        hidden_channels (int): Complex dimension :math:`d`.
        margin (float, optional): :math:`\gamma` (default: :obj:`12.0`).
        epsilon (float, optional): :math:`\epsilon` (default: :obj:`2.0`).
    """
    entity_factor = 2

    def init_entity_(self, weight: Tensor) -> Tensor:
        r = (self.margin + self.epsilon) / self.entity_dim
        return torch.nn.init.uniform_(weight, -r, r)

    def init_relation_(self, weight: Tensor) -> Tensor:
        r = self.embedding_range
        return torch.nn.init.uniform_(weight, -r, r)

    def rotation(self, rel: Tensor) -> Tuple[Tensor, Tensor]:
        r"""``(cos phi_r, sin phi_r)`` of stored (scaled) relation phases."""
        phase = rel / (self.embedding_range / math.pi)
        return torch.cos(phase), torch.sin(phase)

    def _rotate(self, x: Tensor, rel: Tensor, conjugate: bool = False) -> Tuple[Tensor, Tensor]:
        re_x, im_x = x.chunk(2, dim=-1)
        re_r, im_r = self.rotation(rel)
        if conjugate:
            im_r = -im_r
        return re_x * re_r - im_x * im_r, re_x * im_r + im_x * re_r

    def forward(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        re_hr, im_hr = self._rotate(head, rel)
        re_t, im_t = tail.chunk(2, dim=-1)
        return self.margin - complex_modulus_sum(re_hr - re_t, im_hr - im_t)

    def query(self, entity: Tensor, rel: Tensor, tails: bool) -> Tensor:
        # |c * e^{i phi} - t| = |c - t * e^{-i phi}| since |e^{i phi}| = 1
        return torch.cat(self._rotate(entity, rel, conjugate=not tails), dim=-1)

    def against(self, query: Tensor, candidates: Tensor,
                chunk_size: Optional[int] = None) -> Tensor:
        grad = torch.is_grad_enabled() and (query.requires_grad or candidates.requires_grad)
        if not grad and candidates.device.type == 'cpu':  # GPUs prefer one large broadcast
            out = (modulus_distance_compiled(query, candidates.contiguous())
                   if compiled_distances_on() else None)
            if out is None:
                out = modulus_distance_blocked(*query.chunk(2, dim=-1),
                                               *candidates.chunk(2, dim=-1))
            # margin - d in place: -d + margin is the same float, without a second [B, N]
            return out.neg_().add_(self.margin)
        re_q, im_q = (x[:, None] for x in query.chunk(2, dim=-1))

        def score_chunk(sl: slice) -> Tensor:
            re_c, im_c = candidates[None, sl].chunk(2, dim=-1)
            return self.margin - complex_modulus_sum(re_q - re_c, im_q - im_c)

        return _chunked_scores(score_chunk, candidates.size(0), query, self.entity_dim,
                               chunk_size)

    def score_corrupted(self, head: Tensor, rel: Tensor, tail: Tensor, candidates: Tensor,
                        corrupt_head: Tensor) -> Tensor:
        if corrupt_head.dim() != 1:
            return super().score_corrupted(head, rel, tail, candidates, corrupt_head)
        # One query per row, rotated once: h e^{i phi} against candidate tails,
        # or t e^{-i phi} against candidate heads (|c e^{i phi} - t| =
        # |c - t e^{-i phi}|); no [B, K, D] head/tail copies or rotations.
        query = torch.where(corrupt_head.view(-1, 1),
                            torch.cat(self._rotate(tail, rel, conjugate=True), dim=-1),
                            torch.cat(self._rotate(head, rel), dim=-1))
        return self.margin - ModulusDistance.apply(query.unsqueeze(1), candidates)

    def constant_gradient_norm(self, wrt: str = 'both') -> Optional[float]:
        # d|h e^{i phi} - t| / d(re h, im h) is a unit vector per component
        return math.sqrt(self.hidden_channels * (2 if wrt == 'both' else 1))


class TransE(KGScorer):
    r"""The TransE score: a relation translates the head,

    .. math::
        S(h, r, t) = \gamma - \| \mathbf{h} + \mathbf{r} - \mathbf{t} \|_p,

    with :math:`\mathbf{h}, \mathbf{r}, \mathbf{t}` L2-normalised first when
    ``normalize=True`` (as in OpenKE). Embeddings are initialised as
    :math:`\mathcal{U}(\pm(\gamma+\epsilon)/d)`.

    Args:
        hidden_channels (int): Dimension :math:`d`.
        margin (float, optional): :math:`\gamma` (default: :obj:`12.0`).
        epsilon (float, optional): :math:`\epsilon` (default: :obj:`2.0`).
        p_norm (float, optional): The norm :math:`p` (default: :obj:`1.0`).
        normalize (bool, optional): L2-normalise the embeddings before
            scoring (default: :obj:`True`).
    """

    def __init__(self, hidden_channels: int, margin: float = 12.0, epsilon: float = 2.0,
                 p_norm: float = 1.0, normalize: bool = True):
        super().__init__(hidden_channels, margin, epsilon)
        self.p_norm = float(p_norm)
        self.normalize = bool(normalize)

    def init_entity_(self, weight: Tensor) -> Tensor:
        return torch.nn.init.uniform_(weight, -self.embedding_range, self.embedding_range)

    init_relation_ = init_entity_

    def _norm(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=-1) if self.normalize else x

    def forward(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        diff = self._norm(head) + self._norm(rel) - self._norm(tail)
        return self.margin - torch.linalg.vector_norm(diff, ord=self.p_norm, dim=-1)

    def query(self, entity: Tensor, rel: Tensor, tails: bool) -> Tensor:
        # ||c + r - t|| = ||c - (t - r)||
        return self._norm(entity) + (self._norm(rel) if tails else -self._norm(rel))

    def against(self, query: Tensor, candidates: Tensor,
                chunk_size: Optional[int] = None) -> Tensor:
        candidates = self._norm(candidates)
        return _chunked_scores(
            lambda sl: self.margin - torch.cdist(query, candidates[sl], p=self.p_norm,
                                                 compute_mode='donot_use_mm_for_euclid_dist'),
            candidates.size(0), query, self.entity_dim, chunk_size)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(hidden_channels={self.hidden_channels}, '
                f'margin={self.margin}, p_norm={self.p_norm}, normalize={self.normalize})')


class _BilinearScorer(KGScorer):
    """1-vs-all as a matrix product: ``S = query(h, r) . c`` or ``key(r, t) . c``."""

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        raise NotImplementedError

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        raise NotImplementedError

    def query(self, entity: Tensor, rel: Tensor, tails: bool) -> Tensor:
        return self.tail_query(entity, rel) if tails else self.head_query(rel, entity)

    def against(self, query: Tensor, candidates: Tensor,
                chunk_size: Optional[int] = None) -> Tensor:
        return _chunked_scores(lambda sl: query @ candidates[sl].t(), candidates.size(0), query,
                               1, chunk_size)


class DistMult(_BilinearScorer):
    r"""The DistMult score, a diagonal bilinear form,

    .. math::
        S(h, r, t) = \langle \mathbf{h}, \mathbf{r}, \mathbf{t} \rangle
        = \sum_i h_i\, r_i\, t_i.

    The margin is not part of the score (it is kept for the adversarial
    generator loss :math:`\gamma - S`). Xavier initialisation.

    Args:
        hidden_channels (int): Dimension :math:`d`.
        margin (float, optional): :math:`\gamma` (default: :obj:`12.0`).
        epsilon (float, optional): Unused; kept for a uniform signature.
            (default: :obj:`2.0`)
    """

    def forward(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        return (head * rel * tail).sum(dim=-1)

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        return head * rel

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        return rel * tail


class ComplEx(_BilinearScorer):
    r"""The ComplEx score, a bilinear form in complex space,

    .. math::
        S(h, r, t) = \mathrm{Re}\Big(\sum_i h_i\, r_i\, \bar{t}_i\Big),

    with entity and relation embeddings ``[re | im]`` of size :math:`2d`.
    Xavier initialisation; the margin is not part of the score.

    Args:
        hidden_channels (int): Complex dimension :math:`d`.
        margin (float, optional): :math:`\gamma` (default: :obj:`12.0`).
        epsilon (float, optional): Unused; kept for a uniform signature.
            (default: :obj:`2.0`)
    """
    entity_factor = 2
    relation_factor = 2

    def forward(self, head: Tensor, rel: Tensor, tail: Tensor) -> Tensor:
        re_q, im_q = self.tail_query(head, rel).chunk(2, dim=-1)
        re_t, im_t = tail.chunk(2, dim=-1)
        return (re_q * re_t).sum(dim=-1) + (im_q * im_t).sum(dim=-1)

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        re_h, im_h = head.chunk(2, dim=-1)
        re_r, im_r = rel.chunk(2, dim=-1)
        return torch.cat([re_h * re_r - im_h * im_r, re_h * im_r + im_h * re_r], dim=-1)

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        re_r, im_r = rel.chunk(2, dim=-1)
        re_t, im_t = tail.chunk(2, dim=-1)
        return torch.cat([re_r * re_t + im_r * im_t, re_r * im_t - im_r * re_t], dim=-1)


#: score function name -> class
SCORERS: Dict[str, Type[KGScorer]] = {
    'rotate': RotatE,
    'transe': TransE,
    'distmult': DistMult,
    'complex': ComplEx,
}
