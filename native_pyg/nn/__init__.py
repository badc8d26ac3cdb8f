"""NativE and its parts: what entities bring in (features, masks, graph,
added entities; :mod:`~native_pyg.nn.entity_inputs`), the structural table
(:mod:`~native_pyg.nn.structural_table`), modality projections, structural
GNN encoders, ReDAF fusion, score functions, the embedding caches (one
protocol, :mod:`~native_pyg.nn.embedding_cache`), the CoMAT generator and
losses, and the NativE model that composes them. What other packages may
use of a NativE is listed in ``docs/architecture.md`` (its public surface).

May import: :mod:`native_pyg.kernels`, :mod:`native_pyg.data`,
:mod:`native_pyg.loader`."""
from native_pyg.data.relations import unpack_triples
from native_pyg.nn.projections import STRUCTURE, EntityRows, ModalityProjections
from native_pyg.nn.entity_inputs import AddedEntities, EntityInputs
from native_pyg.nn.redaf import ReDAF
from native_pyg.nn.scorers import SCORERS, ComplEx, DistMult, KGScorer, RotatE, TransE
from native_pyg.nn.gnn import (STRUCTURAL_ENCODERS, CompGCNConv, CompGCNEncoder,
                               EdgewiseRGCNConv, LayerwiseEncoder, RGCNEncoder)
from native_pyg.nn.layerwise import layerwise_inference, layerwise_structural_embeddings
from native_pyg.nn.embedding_cache import EmbeddingCache
from native_pyg.nn.candidates import CandidateCache, score_one_vs_all
from native_pyg.nn.step_embeddings import StepEmbeddings
from native_pyg.nn.structural_table import DenseTable, RowSparseTable, StructuralTable
from native_pyg.nn.native import NativE
from native_pyg.nn.structure_stand_in import StructureStandIn
from native_pyg.nn.comat import (CoMATGenerator, adversarial_embeddings, critic_loss,
                                 critic_terms, fake_joint_embeddings, generator_loss,
                                 gradient_penalty)

__all__ = [
    'STRUCTURE', 'EntityRows', 'ModalityProjections', 'EntityInputs', 'AddedEntities', 'ReDAF',
    'KGScorer', 'RotatE', 'TransE', 'DistMult', 'ComplEx', 'SCORERS', 'STRUCTURAL_ENCODERS',
    'RGCNEncoder', 'EdgewiseRGCNConv', 'CompGCNConv', 'CompGCNEncoder', 'LayerwiseEncoder',
    'layerwise_inference', 'layerwise_structural_embeddings',
    'EmbeddingCache', 'CandidateCache', 'StepEmbeddings', 'score_one_vs_all',
    'StructuralTable', 'DenseTable', 'RowSparseTable', 'NativE', 'unpack_triples',
    'StructureStandIn',
    'CoMATGenerator', 'fake_joint_embeddings', 'adversarial_embeddings', 'critic_loss',
    'critic_terms', 'generator_loss', 'gradient_penalty',
]
