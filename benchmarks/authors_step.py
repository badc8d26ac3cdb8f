"""The authors' NativE training step (github.com/zjukg/NATIVE, commit c72291c)
as a peer in ``native_step.py``: their ``AdvRelRotatE``, ``SigmoidLoss``
(self-adversarial), ``NegativeSamplingGP``, ``CombinedGenerator`` and
``WCGTrainerGP.train_one_step`` run unchanged from a checkout the user
passes (``--authors-code DIR``); nothing of theirs is part of this
repository.

Only the glue is ours: the model is built as their ``run_adv_wgan_gp.py``
builds it (Adam for the model and the generator, noise 64), on the same
stand-in features as ``native_pyg``'s variants, and each step gets the same
positives and negatives as ``native_pyg``'s steps, laid out as their C++
sampler lays them out (``mode='normal'``: the ``B`` positives, then ``K``
blocks of ``B`` corrupted triples). Their code calls ``.cuda()``
unconditionally; on a CPU run, ``Tensor.cuda`` and ``Module.cuda`` are
made no-ops in this benchmark process (nothing of ``native_pyg`` calls them).
"""
import os
import sys
from typing import Iterable

import numpy as np


def _cpu_only_cuda_calls():
    import torch
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self


class AuthorsStep:
    """The authors' step with the interface ``benchmarks/_harness.py`` times
    (``steps``, ``train_step(batch)``, ``device``): ``steps`` are those of
    ``native_pyg``'s ``trainer`` (the same batches, drawn by our sampler)."""

    def __init__(self, code_dir: str, trainer, features, dim: int, margin: float,
                 lr: float, mu: float, regul_rate: float, adv_temperature: float = 2.0):
        import torch
        if not os.path.isfile(os.path.join(code_dir, 'mmkgc', 'config', 'WCGTrainerGP.py')):
            raise SystemExit(f"--authors-code {code_dir}: no mmkgc/config/WCGTrainerGP.py there "
                             f"(a checkout of github.com/zjukg/NATIVE is expected)")
        self.device = trainer.device
        if self.device.type != 'cuda':
            _cpu_only_cuda_calls()
        sys.path.insert(0, os.path.abspath(code_dir))
        from mmkgc.adv.modules import CombinedGenerator
        from mmkgc.config import WCGTrainerGP
        from mmkgc.module.loss import SigmoidLoss
        from mmkgc.module.model import AdvRelRotatE
        from mmkgc.module.strategy import NegativeSamplingGP
        self.steps: Iterable = trainer.steps
        self.batch_size = trainer.cfg.batch_size
        model = AdvRelRotatE(ent_tot=features['image'].size(0), rel_tot=trainer.model.num_relations,
                             dim=dim, margin=margin, epsilon=2.0, img_emb=features['image'],
                             text_emb=features['text'])
        strategy = NegativeSamplingGP(model=model, loss=SigmoidLoss(adv_temperature=adv_temperature),
                                      batch_size=self.batch_size, regul_rate=regul_rate)
        generator = CombinedGenerator(noise_dim=64, structure_dim=2 * dim, img_dim=2 * dim)
        strategy.to(self.device)
        generator.to(self.device)
        self.trainer = WCGTrainerGP(model=strategy, data_loader=None, train_times=1, alpha=lr,
                                    use_gpu=self.device.type == 'cuda', opt_method='Adam',
                                    generator=generator, lrg=lr, mu=mu)
        # as their run() creates them (it also starts training, so it is not called)
        self.trainer.optimizer = torch.optim.Adam(strategy.parameters(), lr=lr, weight_decay=0)
        self.trainer.optimizer_g = torch.optim.Adam(generator.parameters(), lr=lr, weight_decay=0)

    def batch(self, batch) -> dict:
        """A ``KGBatch`` (positives ``[B, 3]``, negatives ``[B, K]``, the side
        they corrupt) in their sampler's layout."""
        pos = batch.pos.cpu().numpy().astype(np.int64)
        neg = batch.neg.cpu().numpy().astype(np.int64)
        head = np.broadcast_to(batch.corrupt_head.cpu().numpy().reshape(len(pos), -1), neg.shape)
        h = np.where(head, neg, pos[:, :1]).T.reshape(-1)  # K blocks of B
        t = np.where(head, pos[:, 2:], neg).T.reshape(-1)
        num = len(pos) * (1 + neg.shape[1])
        return {'batch_h': np.concatenate([pos[:, 0], h]),
                'batch_t': np.concatenate([pos[:, 2], t]),
                'batch_r': np.tile(pos[:, 1], 1 + neg.shape[1]),
                'batch_y': np.concatenate([np.ones(len(pos)), -np.ones(num - len(pos))]
                                          ).astype(np.float32),
                'mode': 'normal'}

    def train_step(self, batch):
        self.trainer.train_one_step(self.batch(batch))
