"""Trains a :class:`~native_pyg.nn.NativE` model, with or without CoMAT."""
from __future__ import annotations

import copy
import json
import os
import os.path as osp
import time
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from native_pyg.loader.neighbor_loader import KGBatch
from native_pyg.data.relations import distinct_triples
from native_pyg.data.schema import fingerprint, split_triples
from native_pyg.evaluation import RankingEvaluator
from native_pyg.nn import CoMATGenerator, NativE
from native_pyg.nn.comat import critic_terms, generator_loss
from native_pyg.training import distributed
from native_pyg.kernels.allocator import freed_memory_returned, reuse_freed_memory
from native_pyg.training.curves import plot_curves
from native_pyg.training.batching import passes_of, training_steps
from native_pyg.training.best_weights import BestWeights
from native_pyg.training.checkpoint import write_text_atomically
from native_pyg.config.run_config import RunConfig, TrainConfig
from native_pyg.kernels.cpu_blas import resolve_cpu_blas
from native_pyg.training.early_stopping import EarlyStopper
from native_pyg.training.losses import LOSSES, kgc_loss
from native_pyg.training.negative_sampling import build_negative_sampler
from native_pyg.training.optimizer_state import OptimizerStateInFile
from native_pyg.training.optimizers import (build_optimizer, dense_adam, fused_parameters,
                                            set_learning_rates)
from native_pyg.kernels.precision import check_precision
from native_pyg.kernels.runtime import Runtime
from native_pyg.training.process import resolve_device
from native_pyg.training.runs import resumable_checkpoint
from native_pyg.training.structure_dropout import StructureDropout
from native_pyg.training.table_shards import load_weights, with_table_shards, write_checkpoint
from native_pyg.training.stand_in_fitting import fit_structure_stand_in
from native_pyg.training.step_graph import neighbourhood_graph
from native_pyg.training.step_windows import StepWindows
from native_pyg.training.trackers import epoch_line
from native_pyg.training.trained_setup import model_name
from native_pyg.training.validation import evaluate_split, training_evaluator


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss; the last good checkpoint is kept."""


class Trainer:
    r"""Trains a KGC model on the training triples of an MMKG.

    Per batch of positives with :math:`K` Bernoulli negatives each, the KGC
    loss (``training.loss``; by default self-adversarial negative sampling,

    .. math::
        \mathcal{L} = -\log\sigma\big(S(h, r, t)\big) - \sum_{k=1}^{K}
        p_k \log\sigma\big(-S(h'_k, r, t'_k)\big), \quad
        p_k = \operatorname{softmax}_k\big(\alpha\,S(h'_k, r, t'_k)\big),

    with :math:`p_k` detached and :math:`\alpha` = ``adv_temperature``),
    optional L2 regularisation of the structural embeddings of positives and
    negatives and, with ``adversarial=True`` and at least one feature
    modality, the CoMAT critic terms
    :math:`\mu\sum_k(\mathbb{E}[S(\mathrm{fake}_k)]-\mathbb{E}[S(\mathrm{real})])
    + \mu\beta\,\mathrm{GP}` followed by a generator step with its own Adam.
    Evaluates filtered MRR on valid every ``eval_every`` epochs, keeps the
    best model, stops when the :class:`EarlyStopper` says so, and never
    looks at test. With ``out_dir``: ``last.pt`` (every epoch,
    atomic), ``best.pt`` (the best so far, until ``model.pt``, the
    selected model, replaces it at the end), ``history.jsonl`` and
    ``curves.png``. A model with
    a structural GNN encoder runs it per step on the training graph minus
    the batch's positives, or on their sampled neighbourhood
    (``training.num_neighbors``); see :mod:`native_pyg.training.batching`.

    Args:
        model (NativE): The model.
        data (HeteroData): The MMKG (triples of all splits, for filtering).
        config (RunConfig or TrainConfig): Options.
        out_dir (str, optional): Where checkpoints and logs go.
            (default: :obj:`None`)
        evaluator (RankingEvaluator, optional): A shared evaluator
            for validation (its filter depends on the triples only), e.g.
            across the runs of an experiment. (default: :obj:`None`)
        stopper (EarlyStopper, optional): Decides when to stop on the valid
            MRR; :obj:`None` builds ``EarlyStopper(training.patience)``.
            (default: :obj:`None`)
    """
    def __init__(self, model: NativE, data: HeteroData,
                 config: Union[RunConfig, TrainConfig], out_dir: Optional[str] = None,
                 evaluator: Optional[RankingEvaluator] = None,
                 stopper: Optional[EarlyStopper] = None) -> None:
        self.run = copy.deepcopy(config if isinstance(config, RunConfig)
                                 else RunConfig(training=config))
        if self.run.model.modalities is None:
            # checkpoints record what was used, not "all of the dataset's"
            self.run.model.modalities = list(model.feature_modalities)
        cfg: TrainConfig = self.run.training
        if cfg.loss not in LOSSES:
            raise ValueError(f"training.loss must be one of {sorted(LOSSES)}, got {cfg.loss!r}")
        self.cfg, self.data, self.out_dir = cfg, data, out_dir
        self.device = resolve_device(cfg.device)
        check_precision(self.device, cfg.precision)
        #: how the step computes (precision, CPU products, compiled distances)
        self.runtime = Runtime(self.device, cfg.precision, cfg.amp,
                               resolve_cpu_blas(cfg.cpu_blas, cfg.deterministic, self.device),
                               cfg.compile)
        self.data_fingerprint = fingerprint(data)
        store = model.inputs.store  # recorded: a rewritten store is refused
        self.store_identity = store.identity() if store is not None else None
        # under torch.distributed: per-rank draws, rank 0 writes (see training.distributed)
        self.dist = distributed.current()
        rank, self.writes = self.dist.rank, bool(out_dir) and self.dist.is_main
        self.progress = cfg.progress and self.dist.is_main
        self.model = model.to(self.device)
        train = split_triples(data, 'train')
        self.train_triples = (distinct_triples(train, data['entity'].num_nodes)
                              if cfg.dedupe_train else train)
        n, r = data['entity'].num_nodes, data.num_relations
        self.sampler = build_negative_sampler(self.train_triples, n, r, cfg.num_negatives,
                                              cfg.bernoulli, cfg.filter_negatives,
                                              cfg.seed + 7919 * rank, cfg.shared_negatives,
                                              cfg.in_batch_negatives, cfg.corrupt_side)
        # shared negatives repeat (entity, relation) pairs: each is fused once
        self.shared_negatives = cfg.shared_negatives > 0 or cfg.in_batch_negatives > 0
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.steps = training_steps(data, self.train_triples, self.sampler, self.shuffle_gen, cfg,
                                    model.structural_encoder is not None,
                                    model.feature_modalities,
                                    shard=(rank, self.dist.world_size),
                                    feature_store=model.inputs.store,
                                    # features enter the encoder: every node's rows
                                    fetch='nodes' if model.encoder_reads_features
                                    else 'seeds')
        if cfg.sparse_table and model.structural_encoder is not None \
                and cfg.num_neighbors is None:
            raise ValueError(f"training.table_optimizer={cfg.table_optimizer} needs sparse table "
                             f"gradients; a full-graph GNN step reads the whole table: set "
                             f"training.num_neighbors")
        if cfg.sparse_table and self.dist.enabled and not fused_parameters(self.model):
            raise ValueError(f"training.table_optimizer={cfg.table_optimizer} under torchrun: "
                             f"DDP cannot average row-sparse gradients; use adam, or shard the "
                             f"table (--shard-table, model.table: sharded)")
        self.optimizer = build_optimizer(self.model, cfg.lr, cfg.table_optimizer,
                                         table_lr=cfg.table_lr)
        # between fits, in last.pt only where the run has a folder
        self.optimizer_state = OptimizerStateInFile(self.optimizer)
        self.generator: Optional[CoMATGenerator] = None
        self.optimizer_g: Optional[torch.optim.Optimizer] = None
        if cfg.adversarial and model.feature_modalities:
            self.generator = CoMATGenerator(model.feature_modalities, model.entity_dim,
                                            noise_dim=cfg.noise_dim).to(self.device)
            self.optimizer_g = dense_adam(self.generator.parameters(),
                                         cfg.lrg if cfg.lrg is not None else cfg.lr)
        self.structure_dropout = None
        if cfg.structure_dropout > 0:
            if not model.masks_structure:
                raise ValueError("training.structure_dropout needs a model with feature "
                                 "modalities, model.structure_mask=true and model.missing=mask")
            self.structure_dropout = StructureDropout(cfg.structure_dropout, n,
                                                      cfg.seed + 2 + 7919 * rank)
        if model.stand_in is not None and cfg.stand_in_epochs < 1:
            raise ValueError(f"training.stand_in_epochs must be at least 1 with "
                             f"model.structure_stand_in=true, got {cfg.stand_in_epochs}")
        # DDP averages the gradients of the model's loss and of the generator's
        self._ddp_loss = self._ddp_generator = None
        if self.dist.enabled:
            self._ddp_loss = distributed.wrap(
                distributed.DistributedLoss(self.model, self._model_loss), self.device,
                ignore=[f'model.{name}' for name in fused_parameters(self.model)])
            if self.generator is not None:
                self._ddp_generator = distributed.wrap(self.generator, self.device)
        self.windows = StepWindows(self.steps, passes_of(self.steps), self.shuffle_gen,
                                   cfg.steps_per_epoch)
        stored = model.inputs.store is not None
        if evaluator is None:
            self.eval_protocol, evaluator = training_evaluator(data, cfg, stored,
                                                               model.entity_emb.sharded)
        else:  # a caller's evaluator: its own protocol
            self.eval_protocol = evaluator.protocol
        self.evaluator = evaluator
        self.epoch, self.history = 0, []
        self.config_log: List[Dict[str, Any]] = []  # config changes applied on resume
        self.stopper = stopper if stopper is not None else EarlyStopper(cfg.patience)
        #: called as ``fn(trainer, record)`` after every epoch (trackers, tuning's pruner)
        self.epoch_callbacks: List[Callable[['Trainer', Dict[str, Any]], None]] = []
        # with a folder only in best.pt; in memory too on every rank under torch.distributed
        # (a sharded table's best rows: in memory, and in last.pt's shards)
        self.best = BestWeights(self.out_dir if self.writes and not model.entity_emb.sharded
                                else None, in_memory=self.dist.enabled or not self.writes)
        # the last epoch's parameters while fit() has the best ones loaded
        self._last_state: Optional[Union[str, Dict[str, torch.Tensor]]] = None

    @property
    def best_mrr(self) -> float:
        """The best valid MRR so far (:attr:`stopper`)."""
        return self.stopper.best_value

    @property
    def best_epoch(self) -> int:
        """The epoch of :attr:`best_mrr` (``0`` before any validation)."""
        return self.stopper.best_epoch

    @property
    def bad_evals(self) -> int:
        """Evaluations in a row without a gain (:attr:`stopper`)."""
        return self.stopper.bad_evals

    # --- one step -----------------------------------------------------------------
    def _kgc_loss(self, batch: KGBatch) -> torch.Tensor:
        return kgc_loss(self.model, batch, self.cfg, fuse_once=self.shared_negatives)

    def _model_loss(self, batch: KGBatch, hidden: Optional[torch.Tensor]):
        """``(loss, info)`` of a step for the model: the KGC loss plus, with
        CoMAT, the critic terms."""
        cfg = self.cfg
        h, r, t = batch.pos.unbind(1)
        read = (batch.pos[:, 0], batch.pos[:, 2], batch.neg)
        # the critic gathers the positives' modality embeddings from the KGC loss's
        with self.runtime, neighbourhood_graph(self.model, batch, hidden, read), \
                self.model.step_embeddings():
            loss = self._kgc_loss(batch)
            out = {'kgc_loss': float(loss.detach())}
            if self.generator is not None:
                critic, gp = critic_terms(self.model, self.generator, h, r, t, gp_on=cfg.gp_on)
                loss = loss + cfg.mu * critic + cfg.mu * cfg.beta * gp
                out['critic'] = float(critic.detach())
                if self.model.scorer.constant_gradient_norm(cfg.gp_on) is None:
                    out['gp'] = float(gp.detach())  # (a constant, e.g. RotatE's, says nothing)
        return loss, out

    def train_step(self, batch) -> Dict[str, float]:
        """One optimisation step on a :class:`KGBatch` (or on ``[B, 3]``
        positives, whose negatives are drawn here)."""
        if not isinstance(batch, KGBatch):
            batch = KGBatch(batch, *self.sampler.sample(batch))
        batch = batch.to(self.device, non_blocking=True)
        with self.runtime.step_products():  # forward and backward
            return self._optimisation_step(batch)

    def _optimisation_step(self, batch: KGBatch) -> Dict[str, float]:
        self.model.train()
        h, r, t = batch.pos.unbind(1)
        hidden = self.structure_dropout.sample() if self.structure_dropout else None
        loss, out = (self._ddp_loss or self._model_loss)(batch, hidden)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss ({float(loss.detach())}) at epoch {self.epoch + 1}; parameters were "
                f"not updated{self._kept_checkpoint()}. Lower the "
                f"learning rate (training.lr) or check the features for extreme values.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        out['loss'] = float(loss.detach())
        if self.generator is not None:
            # fresh: parameters changed
            positives = (batch.pos[:, 0], batch.pos[:, 2])
            with self.runtime, neighbourhood_graph(self.model, batch, hidden, positives):
                g_loss = generator_loss(self.model, self._ddp_generator or self.generator,
                                        h, r, t)
            self.optimizer_g.zero_grad(set_to_none=True)  # drop the critic's gradients
            g_loss.backward()
            self.optimizer_g.step()
            out['g_loss'] = float(g_loss.detach())
        return out

    # --- epochs -------------------------------------------------------------------
    def train_epoch(self) -> Dict[str, float]:
        start, sums, seen, steps = time.perf_counter(), {}, 0, 0
        bar = tqdm(self.windows.epoch(), total=len(self.windows),
                   desc=f'epoch {self.epoch + 1}/{self.cfg.epochs}', leave=False,
                   disable=_bars(self.progress), unit='batch')
        for batch in bar:
            out = self.train_step(batch)
            seen, steps = seen + batch.pos.size(0), steps + 1
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            rate = seen / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{out['loss']:.4f}", triples_per_s=f'{rate:,.0f}')
        self.epoch += 1
        secs = time.perf_counter() - start
        rec = {'epoch': self.epoch, **{k: v / steps for k, v in sums.items()},
               'seconds': secs, 'triples_per_s': seen * self.dist.world_size / max(secs, 1e-9),
               'world_size': self.dist.world_size}
        return rec

    def evaluate(self, split: str = 'valid', progress: bool = False) -> Dict[str, Any]:
        """Filtered link-prediction metrics of the current model on ``split``
        by the trainer's protocol (``training.eval_protocol``), valid on
        ``training.eval_sample`` seeded triples when set, test on
        ``training.test_sample`` (:mod:`~native_pyg.training.validation`)."""
        self.evaluator.progress = progress and self.dist.is_main
        sample = self.cfg.eval_sample if split == 'valid' else self.cfg.test_sample
        with freed_memory_returned():  # its blocks are not a step's: a heap of its own
            return evaluate_split(self.evaluator, self.model, split_triples(self.data, split),
                                  self.eval_protocol, self.dist, sample, seed=self.cfg.seed)

    def fit(self, epochs: Optional[int] = None) -> List[Dict[str, Any]]:
        """Trains until ``epochs`` (default: the config's) or early stopping;
        returns the history. Ends with the best (valid MRR) parameters loaded
        when validation ran; a later ``fit`` continues from the last epoch.
        With a run folder the optimiser's state is then in ``last.pt`` only
        (:class:`~native_pyg.training.optimizer_state.OptimizerStateInFile`),
        read back by the next ``fit`` or a full :meth:`state_dict`."""
        target = self.cfg.epochs if epochs is None else epochs
        if self.cfg.reuse_memory and self.device.type == 'cpu':
            # from the first step on, not during setup: the setup's transients (sorting
            # millions of triples) would otherwise stay resident until the process ends
            reuse_freed_memory()
        self.optimizer_state.restore()
        first_epoch = self.epoch
        if self._last_state is not None:  # continue from the last epoch, not the best
            last = self._last_state
            if isinstance(last, str):
                load_weights(self.model, last)
            else:
                self.model.load_state_dict(last)
            self._last_state = None
        if self.model.stand_in is not None:  # fitted again after training
            self.model.stand_in.fitted.fill_(False)
        outer = tqdm(total=target, initial=self.epoch, desc='training', unit='epoch',
                     disable=_bars(self.progress))
        # without a terminal, bars would fill a log with escape codes: plain lines
        plain = self.progress and outer.disable
        stopped = self.stopper.should_stop
        while self.epoch < target and not stopped:
            rec = self.train_epoch()
            if self.cfg.eval_every and (self.epoch % self.cfg.eval_every == 0
                                        or self.epoch == target):
                metrics = self.evaluate('valid')
                rec['valid_mrr'] = metrics['both']['mrr']
                rec['valid_hits@10'] = metrics['both']['hits@10']
                if self.stopper.update(self.epoch, rec['valid_mrr']):
                    self.best.keep(self.model, self.epoch)
                stopped = self.stopper.should_stop
            self.history.append(rec)
            for callback in self.epoch_callbacks:
                callback(self, rec)
            outer.update(1)
            outer.set_postfix(loss=f"{rec['loss']:.4f}",
                              valid_mrr=f"{100 * rec.get('valid_mrr', float('nan')):.2f} %")
            if plain:
                print(epoch_line(rec, target), flush=True)
            if self.writes or (self.out_dir and self.dist.enabled):
                state = self.state_dict()  # under torch.distributed every rank gathers
                # every rank writes its rows of a sharded table (table_shards)
                write_checkpoint(state, self._path('last.pt'), self.dist, self.writes)
                if self.writes:  # after last.pt: a kill between the two leaves the best in it
                    self.best.commit(lambda: self.state_dict(best_only=True))
            if self.writes:
                with open(self._path('history.jsonl'), 'a') as f:
                    f.write(json.dumps(rec) + '\n')
        outer.close()
        if self.best.kept:
            # the last epoch's parameters, for a later fit(): in last.pt where it was just
            # written (a copy of a table of millions of rows is gigabytes), else in memory
            last = self._path('last.pt') if self.writes else None
            self._last_state = last if last and osp.exists(last) else {
                k: v.detach().clone() for k, v in self.model.state_dict().items()}
            with freed_memory_returned():
                self.best.load_into(self.model)
        if self.writes and self.epoch > first_epoch and osp.exists(self._path('last.pt')):
            self.optimizer_state.release(self._path('last.pt'))  # this fit's last epoch's
        if self.model.stand_in is not None:  # on the selected parameters
            fit_structure_stand_in(self.model, self.train_triples, self.cfg.stand_in_epochs,
                                   self.cfg.batch_size, self.cfg.num_negatives,
                                   adv_temperature=self.cfg.adv_temperature,
                                   seed=self.cfg.seed, progress=self.progress)
        if self.writes or (self.out_dir and self.dist.enabled):
            # the selected model (best on valid, else the last) for evaluate/predict; it
            # supersedes best.pt, the best so far that a killed run keeps
            write_checkpoint(self.state_dict(best_only=True), self._path('model.pt'), self.dist,
                             self.writes)
        if self.writes:
            self.plot(self._path('curves.png'))
            self.best.superseded('model.pt')
            if osp.exists(self._path('best.pt')):
                os.remove(self._path('best.pt'))
        return self.history

    # --- checkpoints ----------------------------------------------------------------
    def _kept_checkpoint(self) -> str:
        last = self._path('last.pt')
        return (f" and the last good checkpoint ({last}) is kept"
                if last and osp.exists(last) else " and no checkpoint was written yet")

    def _path(self, name: str) -> Optional[str]:
        return osp.join(self.out_dir, name) if self.out_dir else None

    def state_dict(self, best_only: bool = False) -> Dict[str, Any]:
        """Everything needed to resume exactly (``best_only``: model + config)."""
        # best.pt / model.pt hold the best weights once validation ran
        weights_epoch = self.best_epoch if best_only and self.best.kept else self.epoch
        state = {'config': self.run.to_dict(), 'data': self.data_fingerprint,
                 'feature_store': self.store_identity,
                 'epoch': self.epoch, 'world_size': self.dist.world_size,
                 'weights_epoch': weights_epoch, 'model': self.model.state_dict(),
                 'generator': self.generator.state_dict() if self.generator else None,
                 'best_mrr': self.best_mrr, 'best_epoch': self.best_epoch}
        if best_only:
            return state
        draws = self._draw_state()
        self.optimizer_state.restore()
        state.update({
            'optimizer': self.optimizer.state_dict(),
            'optimizer_g': self.optimizer_g.state_dict() if self.generator else None,
            **draws,
            'shuffle_rng': self.shuffle_gen.get_state(),
            'step_windows': self.windows.state_dict(),
            'history': self.history, 'bad_evals': self.bad_evals,
            'best_state': self.best.state_dict(), 'config_log': self.config_log,
        })
        if self.dist.enabled:  # every rank's own draws (a collective: all ranks call this)
            state['ranks'] = distributed.gather_objects(draws, self.dist)
        return state

    def _draw_state(self) -> Dict[str, Any]:
        """This process's random draws: negatives, structure dropout, RNGs."""
        return {'sampler': self.sampler.state_dict(),
                'structure_dropout': (self.structure_dropout.state_dict()
                                      if self.structure_dropout else None),
                'torch_rng': torch.get_rng_state(),
                'cuda_rng': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        ranks = state.get('ranks') or []
        if len(ranks) == self.dist.world_size:  # this rank's own draws
            state = {**state, **ranks[self.dist.rank]}
        self.model.load_state_dict(state['model'])
        if self.generator is not None and state.get('generator') is not None:
            self.generator.load_state_dict(state['generator'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.optimizer_state.forget()
        if self.generator is not None and state.get('optimizer_g') is not None:
            self.optimizer_g.load_state_dict(state['optimizer_g'])
        self.sampler.load_state_dict(state['sampler'])
        if self.structure_dropout is not None and state.get('structure_dropout') is not None:
            self.structure_dropout.load_state_dict(state['structure_dropout'])
        self.shuffle_gen.set_state(state['shuffle_rng'])
        self.windows.load_state_dict(state.get('step_windows') or {})  # after shuffle_rng
        torch.set_rng_state(state['torch_rng'])
        if state.get('cuda_rng') and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda_rng'])
        self.epoch, self.history = state['epoch'], list(state['history'])
        # the stopper's state keeps the trainer's checkpoint keys of earlier versions
        self.stopper.load_state_dict({'best_value': state['best_mrr'],
                                      'best_epoch': state['best_epoch'],
                                      'bad_evals': state['bad_evals']})
        self.best.load_state_dict(state['best_state'], state['best_epoch'])
        self.config_log = list(state.get('config_log', []))
        # the current config's learning rates win over the optimizers' saved ones
        set_learning_rates(self.optimizer, self.cfg.lr, self.cfg.table_lr)
        set_learning_rates(self.optimizer_g, self.cfg.lrg or self.cfg.lr)

    def resume(self, path: str, allow_changes: bool = False) -> None:
        """Continues from a ``last.pt`` written by :meth:`fit`, after checking
        that this trainer's config can continue it
        (:func:`~native_pyg.training.runs.config_changes`); applied changes
        are recorded in :attr:`config_log`."""
        state, changes = resumable_checkpoint(path, self.run.to_dict(), self.data_fingerprint,
                                              allow_changes)
        self.load_state_dict(with_table_shards(state, path, self.model, self.dist))
        if self.writes:  # a kill between last.pt and best.pt: the best is last.pt's own
            self.best.resumed(self.model, self.epoch, lambda: self.state_dict(best_only=True))
        if changes:
            self.config_log.append({'epoch': self.epoch, 'changes': [
                {'key': k, 'old': a, 'new': b} for k, a, b in changes]})
        if self.writes:  # a kill between checkpoint and log: the log follows the checkpoint
            self._write_history()

    def _write_history(self) -> None:
        write_text_atomically(self._path('history.jsonl'),
                              ''.join(json.dumps(rec) + '\n' for rec in self.history))

    # --- plots --------------------------------------------------------------------
    def plot(self, path: str) -> None:
        """Loss (with CoMAT's terms) and valid-MRR curves as a PNG, the
        selected epoch marked (:func:`~native_pyg.training.curves.plot_curves`)."""
        name = model_name(self.model)
        plot_curves({name: self.history}, path, {name: self.best_epoch},
                    title=f"{name} on {osp.basename(str(self.run.dataset))}")


def _bars(progress: bool) -> Optional[bool]:
    """tqdm's ``disable``: ``None`` shows bars only on a terminal."""
    return None if progress else True
