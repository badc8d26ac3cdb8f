"""Training curves as a PNG: the loss and its parts, and validation MRR with
the selected (best) epoch marked, for one run or several side by side."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

#: loss parts a history may hold, with their labels (CoMAT's share of the loss is
#: mu * critic + mu * beta * gp; its generator's own loss is g_loss)
LOSS_PARTS = (('kgc_loss', 'KGC'), ('critic', 'CoMAT critic'), ('gp', 'CoMAT gradient penalty'),
              ('g_loss', 'CoMAT generator'))


def plot_curves(histories: Mapping[str, List[Dict[str, Any]]], path: str,
                best_epochs: Optional[Mapping[str, Optional[int]]] = None,
                title: Optional[str] = None) -> None:
    """Writes ``path``: per run, the total loss (solid) and its parts
    (dashed, on a second panel when CoMAT's terms are there), and validation
    MRR in % with the best epoch marked.

    Args:
        histories: ``{run name: Trainer.history}``.
        path: The PNG to write.
        best_epochs: ``{run name: selected epoch}`` (marked when given).
        title: A title over the figure (e.g. the model and dataset).
    """
    from matplotlib.figure import Figure
    best_epochs = dict(best_epochs or {})
    parts = [(k, label) for k, label in LOSS_PARTS
             if any(k in r for h in histories.values() for r in h)]
    panels = 3 if any(k != 'kgc_loss' for k, _ in parts) else 2
    fig = Figure(figsize=(4.5 * panels, 3.6))
    axes = fig.subplots(1, panels)
    loss_ax, mrr_ax = axes[0], axes[-1]
    for i, (name, history) in enumerate(histories.items()):
        color = f'C{i}'
        ep = [r['epoch'] for r in history]
        loss_ax.plot(ep, [r['loss'] for r in history], color=color, label=f'{name}: total')
        if any('kgc_loss' in r for r in history):
            loss_ax.plot(ep, [r.get('kgc_loss') for r in history], '--', color=color,
                         label=f'{name}: KGC')
        if panels == 3:
            for j, (key, label) in enumerate(k for k in parts if k[0] != 'kgc_loss'):
                if any(key in r for r in history):
                    axes[1].plot(ep, [r.get(key) for r in history], ('-', '--', ':')[j % 3],
                                 color=color, label=f'{name}: {label}')
        ev = [(r['epoch'], 100 * r['valid_mrr']) for r in history if 'valid_mrr' in r]
        if ev:
            mrr_ax.plot(*zip(*ev), marker='o', color=color, label=name)
        best = best_epochs.get(name)
        if best is not None and any(e == best for e, _ in ev):
            value = dict(ev)[best]
            mrr_ax.plot([best], [value], marker='*', markersize=14, color=color,
                        linestyle='none', label=f'{name}: best, epoch {best} ({value:.2f} %)')
    loss_ax.set(xlabel='epoch', ylabel='loss', title='training loss')
    if panels == 3:
        axes[1].set(xlabel='epoch', ylabel='term', title="CoMAT's terms")
        axes[1].legend(fontsize=7)
    mrr_ax.set(xlabel='epoch', ylabel='filtered MRR (%)', title='validation MRR')
    loss_ax.legend(fontsize=7)
    if mrr_ax.lines:
        mrr_ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
