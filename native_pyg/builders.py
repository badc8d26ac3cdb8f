"""What a run config builds: its graph (:func:`load_data`), with its
feature rows where ``data.feature_store`` says (in the graph in memory, in
a disk store written from it or streamed from a folder's files, or in a
store the user wrote with ``native-pyg convert-features``, named by its
path; chosen by size for a folder with ``auto``), and its model
(:func:`build_model`). :mod:`native_pyg.pipeline`, the training job, the
tuning study and the experiments all build runs through these two."""
from __future__ import annotations

import os.path as osp
import re
import warnings
from typing import Any, Dict, List, Optional

import torch.distributed as dist
from torch_geometric.data import HeteroData

from native_pyg.config.run_config import ModelConfig, RunConfig
from native_pyg.data.feature_store import DiskFeatureStore, store_graph_features
from native_pyg.data.schema import ENTITY, split_edges
from native_pyg.data.schema import modalities as data_modalities
from native_pyg.nn import NativE
from native_pyg.nn.gnn import STRUCTURAL_ENCODERS
from native_pyg.nn.scorers import SCORERS
from native_pyg.nn.structural_table import StructuralTable
from native_pyg.nn.stored_inputs import StoredEntityInputs

#: the values of ``data.feature_store`` that are not a store's path
FEATURE_STORE_PLACES = ('memory', 'disk', 'auto')
#: with ``data.feature_store: auto``, a folder whose feature files pass this many bytes
#: keeps its features in a disk store (streamed in, never loaded whole)
AUTO_DISK_BYTES = 2 ** 30


def stores_folder_features(folder: str, place: str) -> bool:
    """Whether a dataset folder's features go to a disk store: ``disk``,
    ``auto`` with feature files of more than :data:`AUTO_DISK_BYTES`, or the
    path of the store the folder wrote itself (a run restored from it)."""
    if place == 'disk':
        return True
    if place not in FEATURE_STORE_PLACES:  # a path: the folder's own store, or another
        own = osp.join(osp.abspath(osp.expanduser(folder)), 'processed', 'feature_store_')
        return osp.abspath(osp.expanduser(place)).startswith(own)
    if place != 'auto':
        return False
    from native_pyg.datasets import find_layout
    from native_pyg.datasets.folder import is_mmkg_folder
    if not is_mmkg_folder(folder):
        return False
    try:
        layout = find_layout(folder)
    except ValueError:  # the loader says what is wrong, in its own words
        return False
    size = sum(osp.getsize(layout.path(f.file)) for f in layout.features.values()
               if osp.isfile(layout.path(f.file)))
    return size > AUTO_DISK_BYTES


def user_feature_store(run: RunConfig, data: HeteroData) -> Optional[DiskFeatureStore]:
    """The store ``data.feature_store`` names by its path (one written by
    ``native-pyg convert-features``), checked against ``data``; ``None`` for
    ``memory`` and ``disk``."""
    path = run.data.feature_store
    if path in FEATURE_STORE_PLACES:
        return None
    if not osp.exists(osp.expanduser(path)):
        raise ValueError(f"data.feature_store {path}: no such feature store (write one with "
                         f"'native-pyg convert-features'; a trained run's store that moved: "
                         f"give its new place with --feature-store PATH)")
    store = DiskFeatureStore(osp.expanduser(path))
    n = data[ENTITY].num_nodes
    if store.num_entities != n:
        raise ValueError(f"data.feature_store {path}: holds rows of {store.num_entities:,} "
                         f"entities, the dataset has {n:,} (row i must be entity i)")
    return store


def feature_store_dir(run: RunConfig) -> str:
    """Where ``data.feature_store: disk`` keeps the dataset's feature store:
    under the dataset root, else in the user's cache (said in a warning)."""
    from native_pyg.datasets import is_dataset_path
    base = run.root or osp.join(osp.expanduser('~'), '.cache', 'native_pyg')
    if run.root is None and not is_dataset_path(run.dataset):
        warnings.warn(f"data.feature_store=disk: no dataset root, so the store goes under "
                      f"{base} (give --root, or a store's path to use one you wrote)")
    return osp.join(base, run.dataset, 'processed', 'feature_store')


def load_data(run: RunConfig) -> HeteroData:
    """The graph of the dataset ``run.dataset`` at ``run.root``, read with
    the options of ``run.data``. A graph written by
    :func:`~native_pyg.datasets.generate_large_mmkg` is read as it lies, its
    features left in its store (``run.data.feature_store`` is set to it).

    Raises:
        ValueError: One line for what a user can fix: missing or corrupt
            files, checksums that differ, no network for a download, a
            missing optional dependency.
    """
    from native_pyg.datasets import is_dataset_path, is_large_mmkg, load_dataset, load_large_mmkg
    kwargs = run.data.dataset_kwargs()
    folder = is_dataset_path(run.dataset)
    if folder and is_large_mmkg(run.dataset):
        # a graph generate_large_mmkg wrote: its triples, and features that stay in its store
        if kwargs:
            raise ValueError(f"{', '.join(kwargs)}: options for datasets read from files, not "
                             f"a generated large graph ({run.dataset})")
        data, store = load_large_mmkg(run.dataset)
        if run.data.feature_store in FEATURE_STORE_PLACES:
            run.data.feature_store = osp.abspath(store.root)
        return data
    if folder:
        kwargs['store_features'] = stores_folder_features(run.dataset, run.data.feature_store)
    try:
        ds = load_dataset(run.dataset, run.root, **kwargs)
        if getattr(ds, 'feature_store_path', None):  # a folder's features, left on disk
            run.data.feature_store = ds.feature_store_path
        return ds[0]
    except OSError as e:  # e.g. a processed cache in a read-only folder
        from native_pyg.data.os_errors import os_error_message
        raise ValueError(f"{run.dataset}: {os_error_message(e)}") from None
    except (ValueError, ImportError) as e:
        raise ValueError(str(e)) from None


def build_model(data: HeteroData, run: RunConfig) -> NativE:
    """A :class:`~native_pyg.nn.NativE` for ``data`` from ``run.model``,
    initialised with ``run.training.seed``.

    Raises:
        ValueError: ``model.modalities`` names a modality the data lacks, or
            ``model.encoder`` is unknown.
    """
    m = run.model
    store = user_feature_store(run, data)
    have = data_modalities(data) if store is None else store.modalities
    mods = have if m.modalities is None else list(m.modalities)
    unknown = sorted(set(mods) - set(have))
    if unknown:
        raise ValueError(f"model.modalities: {unknown} not in the dataset "
                         f"(it has {have or 'none'})")
    check_modalities_trained(run, have)
    kwargs = dict(scorer=m.scorer, margin=m.margin, epsilon=m.epsilon, missing=m.missing,
                  relation_temperature=m.relation_temperature, fusion=m.fusion,
                  seed=run.training.seed, structure_mask=m.structure_mask,
                  structure_stand_in=m.structure_stand_in,
                  sparse=run.training.sparse_table, table=entity_table(data, run),
                  **encoder_arguments(m))
    try:
        if (store is not None or run.data.feature_store == 'disk') and mods:
            if store is None:
                store = store_graph_features(data, feature_store_dir(run), mods)
            inputs = StoredEntityInputs(store, data.num_relations, mods, missing=m.missing)
            edge_index, edge_type = split_edges(data, 'train')
            return NativE(data[ENTITY].num_nodes, data.num_relations, m.hidden_channels,
                          inputs=inputs, edge_index=edge_index, edge_type=edge_type, **kwargs)
        return NativE.from_data(data, hidden_channels=m.hidden_channels, modalities=mods,
                                **kwargs)
    except RuntimeError as e:  # the allocator's refusal: one line, with the knob to turn
        found = re.search(r'allocate (\d+) bytes', str(e))
        if found is None:
            raise
        raise ValueError(f"model.hidden_channels={m.hidden_channels}: the model needs more "
                         f"memory than this machine can give (one of its tensors alone is "
                         f"{int(found.group(1)) / 2**30:,.1f} GiB); lower it") from None


def entity_table(data: HeteroData, run: RunConfig) -> Optional[StructuralTable]:
    """The entity table ``model.table`` asks for: :obj:`None` for ``dense``
    (the model makes its own), a :class:`~native_pyg.nn.sharded_table.ShardedTable`
    over the processes of ``torchrun`` for ``sharded``.

    Raises:
        ValueError: one line, where ``sharded`` cannot run: no process
            group, a GNN encoder or a structure stand-in (both read the
            whole table), another table optimiser, or no TorchRec.
    """
    m = run.model
    if m.table == 'dense':
        return None
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("model.table=sharded: run under torchrun with 2 or more processes, "
                         "e.g. torchrun --nproc_per_node 2 -m native_pyg train --shard-table ...")
    if m.encoder != 'none' or m.structure_stand_in:
        what = 'model.encoder' if m.encoder != 'none' else 'model.structure_stand_in'
        raise ValueError(f"model.table=sharded: {what} reads the whole table; a sharded table "
                         f"trains with model.encoder=none and model.structure_stand_in=false")
    if run.training.table_optimizer != 'rowwise_adagrad':
        raise ValueError(f"model.table=sharded steps its rows with the fused row-wise Adagrad: "
                         f"set training.table_optimizer=rowwise_adagrad, not "
                         f"{run.training.table_optimizer!r} (--shard-table sets both)")
    from native_pyg.nn.sharded_table import ShardedTable
    dim = SCORERS[m.scorer](m.hidden_channels, margin=m.margin, epsilon=m.epsilon).entity_dim
    try:
        lr = run.training.table_lr or run.training.lr
        return ShardedTable(data[ENTITY].num_nodes, dim, lr=lr)
    except ImportError as e:
        raise ValueError(str(e)) from None


def check_modalities_trained(run: RunConfig, have: List[str]) -> None:
    """NativE never silently becomes a structure-only model: with
    ``model.modalities`` null (all the data has), data without any feature
    modality and fusion or CoMAT asked for, a one-line :class:`ValueError`,
    or with ``model.allow_missing_modalities`` a warning on every run."""
    m = run.model
    asked = [what for what, on in ((f"fusion '{m.fusion}'", m.fusion != 'none'),
                                   ('CoMAT', run.training.adversarial)) if on]
    if have or m.modalities is not None or not asked:
        return
    message = (f"{run.dataset}: the data has no feature modality, but the config asks for "
               f"{' and '.join(asked)}")
    if not m.allow_missing_modalities:
        raise ValueError(f"{message}; add its features (or --text-features names), or train "
                         f"structure only with --allow-missing-modalities "
                         f"(model.allow_missing_modalities: true) or --modalities none")
    warnings.warn(f"{message}: training structure only (RotatE-style), as "
                  f"model.allow_missing_modalities asks")


def encoder_arguments(m: ModelConfig) -> Dict[str, Any]:
    """The :class:`~native_pyg.nn.NativE` structural-encoder arguments
    (``encoder``, ``encoder_kwargs``, ``encoder_input``) of a ``model``
    section; ``{}`` for ``encoder: none``."""
    if m.encoder == 'none':
        return {}
    if m.encoder not in STRUCTURAL_ENCODERS:
        raise ValueError(f"model.encoder must be 'none' or one of "
                         f"{sorted(STRUCTURAL_ENCODERS)}, got {m.encoder!r}")
    kwargs = {'num_layers': m.num_layers, 'dropout': m.encoder_dropout}
    if m.encoder == 'rgcn':
        kwargs.update(num_bases=m.num_bases, num_blocks=m.num_blocks)
    else:
        kwargs.update(composition=m.composition)
    return {'encoder': m.encoder, 'encoder_kwargs': kwargs, 'encoder_input': m.encoder_input}
