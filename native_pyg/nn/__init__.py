"""NativE modules: modality encoders, structural GNN encoders, ReDAF fusion,
score functions, the CoMAT generator and losses, and the NativE model."""
from native_pyg.nn.encoders import STRUCTURE, ModalityEncoders
from native_pyg.nn.redaf import ReDAF
from native_pyg.nn.scorers import SCORERS, ComplEx, DistMult, KGScorer, RotatE, TransE
from native_pyg.nn.gnn import (ENCODERS, CompGCNConv, CompGCNEncoder, EdgewiseRGCNConv,
                               RGCNEncoder)
from native_pyg.nn.native import NativE, unpack_triples
from native_pyg.nn.structure_stand_in import StructureStandIn
from native_pyg.nn.comat import (CoMATGenerator, critic_loss, critic_terms, generator_loss,
                                 gradient_penalty)

__all__ = [
    'STRUCTURE', 'ModalityEncoders', 'ReDAF', 'KGScorer', 'RotatE', 'TransE', 'DistMult',
    'ComplEx', 'SCORERS', 'NativE', 'unpack_triples', 'CoMATGenerator', 'critic_loss',
    'critic_terms', 'generator_loss', 'gradient_penalty', 'ENCODERS', 'RGCNEncoder',
    'EdgewiseRGCNConv', 'CompGCNConv', 'CompGCNEncoder', 'StructureStandIn',
]
