"""NativE's public surface: the names ``docs/architecture.md`` lists are what
the modules outside ``native_pyg/nn/`` read of a model, and they exist."""
import ast
import re
from pathlib import Path

import torch

from native_pyg.nn import NativE

PACKAGE = Path(__file__).resolve().parents[2] / 'native_pyg'
ARCHITECTURE = PACKAGE.parent / 'docs' / 'architecture.md'
SECTION = "## NativE's public surface"
#: how a model is named where it is read: ``model``, ``self.model``, ``trainer.model``
OWNERS = ('self', 'trainer')


def documented_surface(text: str) -> set:
    """The names in backticks before the colon of each item of the section
    (``torch.nn.Module`` stands for its public methods)."""
    section = text.split(SECTION, 1)[1].split('\n## ', 1)[0]
    names = set()
    for line in section.splitlines():
        if not line.startswith('- '):
            continue
        for name in re.findall(r'`([^`]+)`', line[2:].split(':', 1)[0]):
            if name == 'torch.nn.Module':
                names |= {n for n in dir(torch.nn.Module) if not n.startswith('_')}
            else:
                names.add(name)
    return names


def _is_model(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == 'model'
    return (isinstance(node, ast.Attribute) and node.attr == 'model'
            and isinstance(node.value, ast.Name) and node.value.id in OWNERS)


def model_reads(tree: ast.AST):
    """``(line, name)`` of every attribute read of a model in ``tree``:
    ``model.name`` and ``getattr``/``hasattr(model, 'name')``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_model(node.value):
            yield node.lineno, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ('getattr', 'hasattr') and len(node.args) >= 2
              and _is_model(node.args[0]) and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str)):
            yield node.lineno, node.args[1].value


def reads_off_the_surface(path: Path, tree: ast.AST, surface: set) -> list:
    return [f'{path.relative_to(PACKAGE)}:{line} .{name}'
            for line, name in model_reads(tree) if name not in surface]


def test_no_module_outside_nn_reads_a_model_attribute_off_the_list():
    surface = documented_surface(ARCHITECTURE.read_text())
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        if path.relative_to(PACKAGE).parts[0] == 'nn':
            continue
        found += reads_off_the_surface(path, ast.parse(path.read_text(), str(path)), surface)
    assert not found, found


def test_a_planted_read_of_the_models_insides_is_found():
    surface = documented_surface(ARCHITECTURE.read_text())
    source = ('def f(model, trainer):\n'
              '    model.fusion.u\n'
              '    trainer.model.projections\n'
              "    getattr(model, 'fusion', None)\n"
              '    model.attention_logits(model.scorer)\n'  # listed: fine
              '    other.fusion\n')  # not a model
    path = PACKAGE / 'evaluation' / 'planted.py'
    assert sorted(reads_off_the_surface(path, ast.parse(source), surface)) == [
        'evaluation/planted.py:2 .fusion', 'evaluation/planted.py:3 .projections',
        'evaluation/planted.py:4 .fusion']


def test_every_listed_name_is_a_models_attribute_and_the_insides_are_not_listed():
    surface = documented_surface(ARCHITECTURE.read_text())
    assert {'encoder_input', 'attention_logits', 'uses_relation_guided_fusion', 'inputs',
            'entity_emb', 'parameters', 'state_dict'} <= surface
    assert not surface & {'fusion', 'projections', 'structure_mask', '_cache'}
    g = torch.Generator().manual_seed(0)
    model = NativE(6, 2, 4, features={'image': torch.randn(6, 3, generator=g)},
                   encoder='rgcn', structure_stand_in=True)
    missing = sorted(n for n in surface - {'NativE'} if not hasattr(model, n))
    assert not missing, missing
