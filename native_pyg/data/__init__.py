"""The multi-modal KG as data: the ``HeteroData`` schema, readers of the
OpenKE/feature files, the disk feature store, the data report, transforms and
the networkx bridge.

May import: :mod:`native_pyg.kernels`. Imported by every package above it."""
from native_pyg.data.schema import (ENTITY, KNOWN_MODALITIES, REL, SPLITS, SchemaError,
                                    build_mmkg, feature_dict, fingerprint, modalities, seen_entities,
                                    split_edges, split_triples, validate_mmkg)
from native_pyg.data.readers import (MMKGFormatError, read_feature_file, read_id_map,
                                     read_openke, read_triples)
from native_pyg.data.relations import relation_categories, relation_tph_hpt
from native_pyg.data.report import MMKGReport, clean_splits, quirk_counts, report
from native_pyg.data.transforms import EntityMissing, ModalityMissing
from native_pyg.data.networkx import from_networkx, to_networkx

__all__ = [
    'ENTITY', 'REL', 'SPLITS', 'KNOWN_MODALITIES', 'SchemaError', 'build_mmkg',
    'validate_mmkg', 'fingerprint', 'modalities', 'seen_entities', 'split_triples', 'split_edges', 'feature_dict',
    'MMKGFormatError', 'read_openke', 'read_id_map', 'read_triples', 'read_feature_file',
    'relation_tph_hpt', 'relation_categories', 'report', 'MMKGReport', 'quirk_counts',
    'clean_splits', 'EntityMissing', 'ModalityMissing', 'from_networkx', 'to_networkx',
]
