r"""The graph model behind :mod:`native_pyg.datasets.large_synthetic`: the
tables a seed draws (entity types, cells, relations and their kinds, latent
centres), per-block entity attributes, latents and feature rows
(:class:`GraphSpec`), and the fact sampler (:class:`FactSampler`).

What the generator models
-------------------------
* **Entity types and positions.** Every entity :math:`i` has a type
  :math:`t_i` (of :math:`T` types with skewed sizes), a position
  :math:`u_i \in [0, 1)` on a circle and a popularity :math:`w_i` drawn
  from a Pareto law (shape 1.5), so degrees are heavy-tailed. Entities of
  one type are cut into *cells* of about 32 neighbouring positions.
* **Relation patterns.** Each relation :math:`r` applies to heads of 1-3
  types (big types serve more relations) and maps a head type :math:`a`
  to a tail type :math:`g_r(a)` and a head position :math:`u` to a tail
  position :math:`\sigma_r u + c_r \bmod 1`
  (:math:`\sigma_r = \pm 1`). A fact :math:`(h, r, t)` draws :math:`r`
  (Zipf frequencies), a head of a domain type by popularity, and a tail by
  popularity in the cell of the mapped position (or a neighbouring cell),
  so :math:`(h, r)` fixes a small set of likely tails that a KGC model can
  learn. Relations come in flavours: *plain*, *symmetric* (an involution on
  types, :math:`\sigma_r = -1`; every fact comes with its mirror),
  *inverse* (the mirrors of 70% of the facts of a plain relation) and
  *compositional* (:math:`g_r = g_{r_2} \circ g_{r_1}` with the composed
  position map).
* **Features correlated with the structure.** Every entity has a latent
  vector :math:`\mathbf{z}_i \in \mathbb{R}^k` (``latent_dim``): a type
  centre, plus a random projection of Fourier features of its position,
  plus individual noise. A modality's row is
  :math:`\mathbf{z}_i \mathbf{W}_m + \epsilon` with a fixed random
  :math:`\mathbf{W}_m` and uniform noise of standard deviation 1.0 (image)
  or 0.5 (text). Each modality is missing (mask ``False``, row zero) for a
  fraction ``missing_rate`` of the entities, independently per modality.

Everything is drawn from ``numpy.random.default_rng([seed, stream, block])``
(:func:`rng`) per fixed block of :data:`BLOCK` entities (or
:data:`TRIPLE_BLOCK` facts), so what an entity gets does not depend on how
the graph is written.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

#: modality -> (index of its random streams, noise standard deviation)
MODALITIES = {'image': (0, 1.0), 'text': (1, 0.5)}

BLOCK = 1024               # entities per random block (attributes, latents, masks, noise)
TRIPLE_BLOCK = 1 << 18     # facts per random block
CELL = 32                  # entities per cell (type x position bucket)
PARETO = 1.5               # popularity shape: heavier tails when smaller
JITTER = (0.15, 0.7, 0.15)  # tail lands one cell below / in / above the mapped cell
INVERSE_RATE = 0.7         # share of a base relation's facts mirrored by its inverse
KINDS = ('plain', 'symmetric', 'inverse', 'compositional')
#: random streams: the first word after the seed
(STREAM_ATTR, STREAM_LATENT, STREAM_MASK, STREAM_NOISE, STREAM_TRIPLES, STREAM_TYPES,
 STREAM_RELATIONS, STREAM_WEIGHTS, STREAM_TRIM, STREAM_SPLIT) = range(10)


def rng(*words: int) -> np.random.Generator:
    """The random generator of stream ``words`` (seed, stream, block, ...)."""
    return np.random.default_rng([int(w) for w in words])


class GraphSpec:
    """The arguments of a graph and the small tables drawn from its seed."""

    def __init__(self, args: Dict[str, object]):
        self.args = args
        a = args
        self.n, self.r, self.seed = int(a['num_entities']), int(a['num_relations']), int(a['seed'])
        self.k = int(a['latent_dim'])
        self.dims = {'image': int(a['image_dim']), 'text': int(a['text_dim'])}
        self.missing_rate, self.dtype = float(a['missing_rate']), str(a['dtype'])
        n, seed = self.n, self.seed
        self.blocks = -(-n // BLOCK)

        # types: skewed sizes, each cut into buckets of about CELL positions
        t = int(min(128, max(2, round(math.sqrt(n) / 8)), max(1, 2 * self.r)))
        p = (np.arange(t) + 1.0) ** -0.7
        self.type_p = p / p.sum()
        self.type_cum = np.cumsum(p) / p.sum()
        self.num_types = t
        self.buckets = np.maximum(1, np.round(n * self.type_p / CELL)).astype(np.int64)
        self.cell_base = np.concatenate([[0], np.cumsum(self.buckets)])

        g = rng(seed, STREAM_TYPES)
        self.centres = g.standard_normal((t, self.k)).astype(np.float32)
        self.position_proj = (0.5 * g.standard_normal((8, self.k))).astype(np.float32)
        self._relations()

    # -- relations ---------------------------------------------------------
    def _relations(self) -> None:
        r, t = self.r, self.num_types
        g = rng(self.seed, STREAM_RELATIONS)
        perm = g.permutation(t)
        kind = np.zeros(r, np.int64)
        dom = np.full((r, 3), -1, np.int64)
        target = np.full((r, t), -1, np.int64)
        sigma = np.ones(r, np.int64)
        shift = np.zeros(r)
        inverse = np.full(r, -1, np.int64)  # base relation -> its inverse relation
        for i in range(r):
            flavour = g.random()
            bases = [j for j in range(i) if kind[j] == 0 and inverse[j] < 0]
            if flavour < 0.15 and bases:  # the inverse of an earlier plain relation
                kind[i], inverse[bases[int(g.integers(len(bases)))]] = 2, i
                continue
            if 0.15 <= flavour < 0.25 and self._compose(i, g, kind, dom, target, sigma, shift):
                kind[i] = 3
                continue
            first = perm[i % t]
            if 0.25 <= flavour < 0.35:  # symmetric: an involution on 1-2 types
                kind[i], sigma[i], shift[i] = 1, -1, g.random()
                other = int(g.choice(t, p=self.type_p))
                dom[i, 0], target[i, first] = first, other
                if other != first:
                    dom[i, 1], target[i, other] = other, first
                continue
            size = int(g.integers(1, 4))  # big types are the domain and range of more relations
            heads = [first] + [int(x) for x in g.choice(t, size - 1, p=self.type_p)]
            heads = list(dict.fromkeys(heads))
            dom[i, :len(heads)] = heads
            target[i, heads] = g.choice(t, len(heads), p=self.type_p)
            sigma[i] = 1 if g.random() < 0.75 else -1
            shift[i] = g.random()
        rank = g.permutation(r)
        weight = 1.0 / (rank + 1.0)
        weight[kind == 2] = 0.0  # inverse relations only mirror facts of their base
        self.kind, self.dom, self.target = kind, dom, target
        # a fact's head type: one of the relation's, in proportion to the type sizes
        size = np.where(dom >= 0, self.type_p[np.maximum(dom, 0)], 0.0)
        size[kind == 2, 0] = 1.0  # inverse relations draw no facts
        self.dom_cum = np.cumsum(size, 1) / size.sum(1, keepdims=True)
        self.dom_last = np.maximum((dom >= 0).sum(1) - 1, 0)
        self.sigma, self.shift, self.inverse = sigma, shift, inverse
        share = weight / weight.sum()
        # facts per draw: symmetric draws come with their mirror, others with their inverse's
        self.expansion = 1.0 + share[kind == 1].sum() + INVERSE_RATE * share[inverse >= 0].sum()
        cum = np.cumsum(weight)
        self.rel_cum = cum / cum[-1]  # ends at exactly 1.0, after the last drawn relation

    def _compose(self, i, g, kind, dom, target, sigma, shift) -> bool:
        """Makes relation ``i`` the composition of two earlier ones, if two
        of them chain on some type."""
        earlier = [j for j in range(i) if kind[j] != 2]
        for _ in range(4 if len(earlier) >= 2 else 0):
            r1, r2 = (earlier[int(x)] for x in g.integers(0, len(earlier), 2))
            heads = [a for a in dom[r1] if a >= 0 and target[r2, target[r1, a]] >= 0]
            if heads:
                heads = heads[:3]
                dom[i, :len(heads)] = heads
                target[i, heads] = target[r2, target[r1, heads]]
                sigma[i] = sigma[r1] * sigma[r2]
                shift[i] = (sigma[r2] * shift[r1] + shift[r2]) % 1.0
                return True
        return False

    def inverse_of(self) -> np.ndarray:
        """``[R]``: the base relation of each inverse relation, else -1."""
        out = np.full(self.r, -1, np.int64)
        base = np.flatnonzero(self.inverse >= 0)
        out[self.inverse[base]] = base
        return out

    # -- entities ----------------------------------------------------------
    def block_range(self, b: int) -> Tuple[int, int]:
        """``(first, stop)``: the entities of block ``b``."""
        return b * BLOCK, min(self.n, (b + 1) * BLOCK)

    def attributes(self, b: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(type, position, popularity)`` of the entities of block ``b``."""
        lo, hi = self.block_range(b)
        g = rng(self.seed, STREAM_ATTR, b)
        kind = np.minimum(np.searchsorted(self.type_cum, g.random(hi - lo), side='right'),
                          self.num_types - 1)
        pos = g.random(hi - lo)
        pop = (1.0 - g.random(hi - lo)) ** (-1.0 / PARETO)
        return kind, pos, pop

    def latents(self, b: int) -> np.ndarray:
        """``[n_b, k]`` float32 latent vectors of block ``b``."""
        kind, pos, _ = self.attributes(b)
        angle = 2 * np.pi * pos[:, None] * np.arange(1, 5)
        fourier = np.concatenate([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
        z = rng(self.seed, STREAM_LATENT, b).standard_normal((len(pos), self.k), dtype=np.float32)
        z *= 0.4
        z += 0.7 * self.centres[kind]
        z += 0.6 * (fourier @ self.position_proj)
        return z

    def weights(self, modality: str) -> np.ndarray:
        """``[k, d]`` float32 projection of the latents to ``modality``'s rows."""
        index, _ = MODALITIES[modality]
        g = rng(self.seed, STREAM_WEIGHTS, index)
        w = g.standard_normal((self.k, self.dims[modality]), dtype=np.float32)
        return w / np.float32(math.sqrt(self.k))

    def mask(self, modality: str, b: int) -> np.ndarray:
        """``[n_b]``: which entities of block ``b`` have ``modality``."""
        lo, hi = self.block_range(b)
        index, _ = MODALITIES[modality]
        return rng(self.seed, STREAM_MASK, index, b).random(hi - lo) >= self.missing_rate

    def rows(self, modality: str, b: int, w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(rows [n_b, d] float32, zero where missing; mask [n_b])`` of block ``b``."""
        index, noise = MODALITIES[modality]
        present = self.mask(modality, b)
        z = self.latents(b)[present]
        x = np.zeros((len(present), w.shape[1]), np.float32)
        xp = z @ w
        eps = rng(self.seed, STREAM_NOISE, index, b).random(xp.shape, dtype=np.float32)
        eps -= np.float32(0.5)
        eps *= np.float32(noise * math.sqrt(12.0))  # uniform noise of that standard deviation
        xp += eps
        x[present] = xp
        return x, present


# -- facts -------------------------------------------------------------------
class FactSampler:
    """Draws blocks of facts; holds per-entity scalars only (24 bytes an
    entity, about 64 while it sorts them)."""

    def __init__(self, spec: GraphSpec, bar=None):
        self.spec = spec
        n = spec.n
        kind = np.empty(n, np.int64)
        self.pos = np.empty(n)
        pop = np.empty(n)
        for b in range(spec.blocks):
            lo, hi = spec.block_range(b)
            kind[lo:hi], self.pos[lo:hi], pop[lo:hi] = spec.attributes(b)
            if bar is not None:
                bar.update(hi - lo)
        bucket = np.minimum((self.pos * spec.buckets[kind]).astype(np.int64),
                            spec.buckets[kind] - 1)
        cell = spec.cell_base[kind] + bucket
        self.order = np.argsort(cell, kind='stable')  # entities grouped by cell, types in order
        cells = int(spec.cell_base[-1])
        counts = np.bincount(cell, minlength=cells)
        del cell, bucket
        self.cell_lo = np.concatenate([[0], np.cumsum(counts)])
        self.type_lo = self.cell_lo[spec.cell_base]
        self.cum = np.concatenate([[0.0], np.cumsum(pop[self.order])])
        del pop, kind

    def _pick(self, lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Entities drawn by popularity among sorted positions ``[lo, hi)``
        (all entities where that range is empty)."""
        empty = hi <= lo
        lo, hi = np.where(empty, 0, lo), np.where(empty, self.spec.n, hi)
        x = self.cum[lo] + u * (self.cum[hi] - self.cum[lo])
        at = np.clip(np.searchsorted(self.cum, x, side='right') - 1, lo, hi - 1)
        return self.order[at]

    def block(self, block: int, count: int) -> np.ndarray:
        """The ``(head * R + relation) * N + tail`` keys of ``count`` facts
        (and their mirrors), self-loops dropped."""
        s = self.spec
        g = rng(s.seed, STREAM_TRIPLES, block)
        rel = np.minimum(np.searchsorted(s.rel_cum, g.random(count), side='right'), s.r - 1)
        u = g.random(count)[:, None]
        a = s.dom[rel, np.minimum((u >= s.dom_cum[rel]).sum(1), s.dom_last[rel])]
        head = self._pick(self.type_lo[a], self.type_lo[a + 1], g.random(count))
        b = s.target[rel, a]
        mapped = (s.sigma[rel] * self.pos[head] + s.shift[rel]) % 1.0
        jitter = np.searchsorted(np.cumsum(JITTER), g.random(count), side='right') - 1
        bucket = (np.minimum((mapped * s.buckets[b]).astype(np.int64), s.buckets[b] - 1)
                  + jitter) % s.buckets[b]
        cell = s.cell_base[b] + bucket
        tail = self._pick(self.cell_lo[cell], self.cell_lo[cell + 1], g.random(count))
        mirror = s.kind[rel] == 1
        inv = (s.inverse[rel] >= 0) & (g.random(count) < INVERSE_RATE)
        h = np.concatenate([head, tail[mirror], tail[inv]])
        r = np.concatenate([rel, rel[mirror], s.inverse[rel[inv]]])
        t = np.concatenate([tail, head[mirror], head[inv]])
        keep = h != t
        return (h[keep] * s.r + r[keep]) * s.n + t[keep]
