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
  chunks of candidates so that no intermediate exceeds a memory budget.

Higher scores mean more plausible triples.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Dict, Iterator, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor

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

    def score_tails(self, head: Tensor, rel: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        r"""Scores every candidate as the tail of every query
        :math:`(h_b, r_b, ?)`.

        Args:
            head (torch.Tensor): ``[B, De]``.
            rel (torch.Tensor): ``[B, Dr]``.
            candidates (torch.Tensor): ``[N, De]``.
            chunk_size (int, optional): Candidates per chunk.
                (default: :obj:`None`, every ``[B, chunk, De]`` intermediate
                kept under :data:`CHUNK_BUDGET` elements)

        Returns:
            ``[B, N]`` scores.
        """
        return _chunked_scores(lambda sl: self(head[:, None], rel[:, None], candidates[None, sl]),
                               candidates.size(0), head, self.entity_dim, chunk_size)

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
        return _chunked_scores(lambda sl: self(candidates[None, sl], rel[:, None], tail[:, None]),
                               candidates.size(0), tail, self.entity_dim, chunk_size)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(hidden_channels={self.hidden_channels}, '
                f'margin={self.margin})')


def _complex_modulus_sum(re: Tensor, im: Tensor) -> Tensor:
    r""":math:`\sum_i |re_i + \mathrm{i}\, im_i|` over the last dimension."""
    if torch.is_grad_enabled() and (re.requires_grad or im.requires_grad):
        # vector_norm's backward is 0 (hypot's is NaN) where both parts vanish
        return torch.linalg.vector_norm(torch.stack([re, im], dim=-1), dim=-1).sum(dim=-1)
    return torch.hypot(re, im).sum(dim=-1)  # several times faster without autograd


def _pair_distance(query: Tensor, candidates: Tensor) -> Tensor:
    # [B, 1, 2D] queries against [B, K, 2D] candidates -> [B, K]
    d = (query - candidates).unflatten(-1, (2, -1))
    return torch.sqrt((d * d).sum(-2)).sum(-1)


def _pair_distance_grad(query: Tensor, candidates: Tensor, grad: Tensor) -> Tensor:
    # the candidates' gradient [B, K, 2D] (the queries' is minus its sum over K)
    d = (candidates - query).unflatten(-1, (2, -1))
    scale = grad[..., None, None] / torch.sqrt((d * d).sum(-2, keepdim=True)).clamp_min(1e-30)
    return (d * scale).flatten(-2)


def _modulus_grad(diff: Tensor, modulus: Tensor, grad: Tensor) -> Tensor:
    # d|z|/dz = z / |z|; a vanishing |z| has z = 0, so any finite scale gives 0
    # (the candidates' gradient: diff is query - candidates)
    scale = grad.neg().unsqueeze(-1) / modulus.clamp_min(1e-30)
    return (diff.unflatten(-1, (2, -1)) * scale.unsqueeze(-2)).flatten(-2)


class _ModulusDistance(torch.autograd.Function):
    r""":math:`\sum_i |q_i - c_i|` over the complex coordinates of ``[..., 2D]``
    ``[re | im]`` queries and candidates (broadcast), saving one difference
    tensor instead of autograd's stacked and chunked copies; the gradient is
    0 where a difference vanishes (as ``vector_norm``'s). First-order only.
    Inside :func:`compiled_distances`, ``[B, 1, 2D]`` queries against ``[B,
    K, 2D]`` candidates run as fused loops generated by :func:`torch.compile`
    (forward and backward; nothing ``[B, K, 2D]`` is kept but the inputs)."""

    @staticmethod
    def forward(ctx, query: Tensor, candidates: Tensor) -> Tensor:
        ctx.shapes = (query.shape, candidates.shape)
        ctx.fused = False
        if _COMPILE['on'] and query.dim() == 3 and query.size(1) == 1 \
                and query.shape[::2] == candidates.shape[::2]:
            out = run_compiled(_pair_distance, query, candidates, dynamic=True)
            if out is not None:
                ctx.fused = True
                ctx.save_for_backward(query, candidates)
                return out
        diff = query - candidates
        dx, dy = diff.chunk(2, dim=-1)
        modulus = torch.hypot(dx, dy)
        ctx.save_for_backward(diff, modulus)
        return modulus.sum(dim=-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        if ctx.fused:
            query, candidates = ctx.saved_tensors
            g = run_compiled(_pair_distance_grad, query, candidates, grad.contiguous(),
                             dynamic=True)
            if g is None:  # compiling the backward failed: the eager formula
                diff = query - candidates
                g = _modulus_grad(diff, torch.hypot(*diff.chunk(2, dim=-1)), grad)
        else:
            g = _modulus_grad(*ctx.saved_tensors, grad)
        shape_q, shape_c = ctx.shapes
        return (g.sum_to_size(shape_q).neg() if ctx.needs_input_grad[0] else None,
                g.sum_to_size(shape_c) if ctx.needs_input_grad[1] else None)


#: set by :func:`compiled_distances`; ``failed`` once compiling failed (no compiler)
_COMPILE = {'on': False, 'failed': False}
#: compiled kernels by function name
_KERNELS: Dict[str, Callable] = {}


@contextlib.contextmanager
def compiled_distances(enabled: bool = True) -> Iterator[None]:
    r"""Context in which RotatE distances run as fused loops generated by
    :func:`torch.compile`: 1-vs-all distances on a CPU (about 4x faster
    than the blocked eager kernel) and the training step's distances of
    corrupted triples, forward and backward (about 2.5x faster than eager
    on a CPU). Each kernel compiles on first use (about 15 s cold, a few
    seconds with PyTorch's on-disk cache). Needs a C++ compiler on a CPU;
    without one a warning is given once and the eager kernels run."""
    previous, _COMPILE['on'] = _COMPILE['on'], enabled
    try:
        yield
    finally:
        _COMPILE['on'] = previous


def run_compiled(fn: Callable[..., Tensor], *args: Tensor, dynamic: bool = False
                 ) -> Optional[Tensor]:
    """``fn(*args)`` by its :func:`torch.compile` kernel (built once), or
    ``None`` where compiling failed (one warning for the process)."""
    if _COMPILE['failed']:
        return None
    if fn.__name__ not in _KERNELS:
        _KERNELS[fn.__name__] = torch.compile(fn, dynamic=dynamic)
    try:
        return _KERNELS[fn.__name__](*args)
    except Exception as e:  # no C++ compiler, unsupported platform
        message = str(e).strip().splitlines()[0] if str(e).strip() else ''
        warnings.warn(f"compiled distances unavailable ({type(e).__name__}: {message}); "
                      f"using the eager kernels", stacklevel=3)
        _COMPILE['failed'] = True
        return None


def _distance_kernel(query: Tensor, candidates: Tensor) -> Tensor:
    # [Q, 2D] queries against [C, 2D] candidates -> [Q, C]
    return _pair_distance(query[:, None], candidates[None])


def _padded_rows(x: Tensor, start: int, size: int) -> Tensor:
    """Rows ``start:start + size`` of ``x``, zero-padded to ``size`` rows."""
    block = x[start:start + size]
    if block.size(0) < size:
        block = torch.cat([block, block.new_zeros(size - block.size(0), block.size(1))])
    return block


def _modulus_distance_compiled(query: Tensor, candidates: Tensor, query_block: int = 32,
                               candidate_block: int = 1024) -> Optional[Tensor]:
    """:func:`_modulus_distance_blocked` of ``[Q, 2D]`` queries and ``[N,
    2D]`` candidates (``[re | im]``) by the compiled kernel, over fixed-size
    (zero-padded) query x candidate tiles: one compilation per embedding
    size, and a tile's candidates stay in cache across its queries (2x
    faster than streaming all candidates past each query block); ``None``
    if compiling failed."""
    num_q, num_c = query.size(0), candidates.size(0)
    out = query.new_empty(num_q, num_c)
    starts = range(0, num_q, query_block)
    blocks = [_padded_rows(query, i, query_block) for i in starts]  # padded once, used per tile
    for j in range(0, num_c, candidate_block):
        tile, cols = _padded_rows(candidates, j, candidate_block), min(candidate_block, num_c - j)
        for i, block in zip(starts, blocks):
            dist = run_compiled(_distance_kernel, block, tile)
            if dist is None:
                return None
            out[i:i + query_block, j:j + cols] = dist[:min(query_block, num_q - i), :cols]
    return out


def _modulus_distance_blocked(re_q: Tensor, im_q: Tensor, re_c: Tensor, im_c: Tensor,
                              query_block: int = 8, candidate_block: int = 256) -> Tensor:
    r"""``[B, N]`` :math:`\sum_i |q_{b,i} - c_{n,i}|` (complex) without autograd.

    Small query x candidate blocks keep the temporaries in cache and are
    updated in place: 5-8x faster on a CPU than one large broadcast, which
    is bound by memory traffic. Candidate blocks run outside and query
    blocks inside (a block of candidates stays in cache for all queries),
    in two buffers allocated once. Fewer queries than a block take more
    candidates per block (the same buffers), so that a few queries against
    many candidates are not bound by per-block overhead."""
    if re_q.size(0) >= 2 * query_block:  # copies that pay off over several query blocks
        re_c, im_c = re_c.contiguous(), im_c.contiguous()
    num_q, num_c = re_q.size(0), re_c.size(0)
    out = re_q.new_empty(num_q, num_c)
    rows = max(1, min(query_block, num_q))
    width = candidate_block * query_block // rows
    x = re_q.new_empty(rows, min(width, num_c), re_q.size(1))
    y = torch.empty_like(x)
    for j in range(0, num_c, width):
        c_re, c_im = re_c[None, j:j + width], im_c[None, j:j + width]
        for i in range(0, num_q, query_block):
            a, b = re_q[i:i + query_block, None], im_q[i:i + query_block, None]
            dx, dy = x[:a.size(0), :c_re.size(1)], y[:a.size(0), :c_re.size(1)]
            torch.sub(a, c_re, out=dx)
            torch.sub(b, c_im, out=dy)
            dx.mul_(dx).addcmul_(dy, dy).sqrt_()
            torch.sum(dx, dim=-1, out=out[i:i + query_block, j:j + width])
    return out


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
        return self.margin - _complex_modulus_sum(re_hr - re_t, im_hr - im_t)

    def _against(self, query: Tuple[Tensor, Tensor], candidates: Tensor,
                 chunk_size: Optional[int]) -> Tensor:
        grad = torch.is_grad_enabled() and (query[0].requires_grad or candidates.requires_grad)
        if not grad and candidates.device.type == 'cpu':  # GPUs prefer one large broadcast
            # a few queries: the eager kernel is as fast, and compiles nothing
            out = _modulus_distance_compiled(torch.cat(query, dim=-1), candidates.contiguous()) \
                if _COMPILE['on'] and query[0].size(0) >= 4 else None
            return self.margin - (out if out is not None else _modulus_distance_blocked(
                *query, *candidates.chunk(2, dim=-1)))
        re_q, im_q = query[0][:, None], query[1][:, None]

        def score_chunk(sl: slice) -> Tensor:
            re_c, im_c = candidates[None, sl].chunk(2, dim=-1)
            return self.margin - _complex_modulus_sum(re_q - re_c, im_q - im_c)

        return _chunked_scores(score_chunk, candidates.size(0), query[0], self.entity_dim,
                               chunk_size)

    def score_tails(self, head: Tensor, rel: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        return self._against(self._rotate(head, rel), candidates, chunk_size)

    def score_heads(self, rel: Tensor, tail: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        # |c * e^{i phi} - t| = |c - t * e^{-i phi}| since |e^{i phi}| = 1
        return self._against(self._rotate(tail, rel, conjugate=True), candidates, chunk_size)

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
        return self.margin - _ModulusDistance.apply(query.unsqueeze(1), candidates)

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

    def _against(self, query: Tensor, candidates: Tensor, chunk_size: Optional[int]) -> Tensor:
        candidates = self._norm(candidates)
        return _chunked_scores(
            lambda sl: self.margin - torch.cdist(query, candidates[sl], p=self.p_norm,
                                                 compute_mode='donot_use_mm_for_euclid_dist'),
            candidates.size(0), query, self.entity_dim, chunk_size)

    def score_tails(self, head: Tensor, rel: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        return self._against(self._norm(head) + self._norm(rel), candidates, chunk_size)

    def score_heads(self, rel: Tensor, tail: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        # ||c + r - t|| = ||c - (t - r)||
        return self._against(self._norm(tail) - self._norm(rel), candidates, chunk_size)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(hidden_channels={self.hidden_channels}, '
                f'margin={self.margin}, p_norm={self.p_norm}, normalize={self.normalize})')


class _BilinearScorer(KGScorer):
    """1-vs-all as a matrix product: ``S = query(h, r) . c`` or ``key(r, t) . c``."""

    def tail_query(self, head: Tensor, rel: Tensor) -> Tensor:
        raise NotImplementedError

    def head_query(self, rel: Tensor, tail: Tensor) -> Tensor:
        raise NotImplementedError

    def _against(self, query: Tensor, candidates: Tensor, chunk_size: Optional[int]) -> Tensor:
        return _chunked_scores(lambda sl: query @ candidates[sl].t(), candidates.size(0), query,
                               1, chunk_size)

    def score_tails(self, head: Tensor, rel: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        return self._against(self.tail_query(head, rel), candidates, chunk_size)

    def score_heads(self, rel: Tensor, tail: Tensor, candidates: Tensor,
                    chunk_size: Optional[int] = None) -> Tensor:
        return self._against(self.head_query(rel, tail), candidates, chunk_size)


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
