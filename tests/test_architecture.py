"""The package's shape: imports run one way between packages (kernels ->
data -> loader -> nn -> config -> evaluation -> training -> pipeline ->
experiments -> cli) and, inside every package, up the floors that
``docs/architecture.md`` lists for it; no circle, no module passes 500 lines,
and no module reaches into another object's private members."""
import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'native_pyg'
#: layer of each top-level part of the package; an import may only go to the same or a lower one
LAYERS = {'kernels': 0, 'data': 1, 'features': 1, 'loader': 2, 'nn': 3, 'datasets': 3, 'config': 4,
          'evaluation': 5, 'training': 6, 'pipeline': 7, 'builders': 7, 'training_job': 8, 'prediction': 7,
          'completion': 8, 'experiments': 8, 'tuning': 8, 'cli': 9, '__main__': 9, '__init__': 0}
MAX_LINES = 500
ARCHITECTURE = PACKAGE.parent / 'docs' / 'architecture.md'


def modules():
    return _MODULES


def _parse():
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        yield name, path, ast.parse(path.read_text(), str(path))


_MODULES = list(_parse())


def _package(name, path):
    """The package a module's relative imports start from."""
    return name if path.name == '__init__.py' else name.rpartition('.')[0]


def _absolute(name, path, node):
    """The module an ``ImportFrom`` names, relative ones resolved (``None``
    outside native_pyg)."""
    if node.level == 0:
        return node.module if node.module and node.module.startswith('native_pyg') else None
    base = _package(name, path).split('.')
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def imported(name, path, tree):
    """The native_pyg modules a module imports (anywhere in it), absolute
    and relative imports alike."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith('native_pyg')}
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(name, path, node)
            if module is not None:
                out.add(module)
                out |= {f'{module}.{a.name}' for a in node.names}
    known = {n for n, _, _ in modules()}
    return {m for m in out if m in known and m != name}


def layer(module):
    parts = module.split('.')
    return LAYERS[parts[1] if len(parts) > 1 else '__init__']


def test_imports_form_no_circle_and_never_run_upwards():
    graph = {name: imported(name, path, tree) for name, path, tree in modules()}
    # the top-level face ('native_pyg', e.g. native_pyg.tune) hands on names of any layer
    upwards = [(a, b) for a, targets in graph.items() for b in targets
               if b != 'native_pyg' and a != 'native_pyg' and layer(b) > layer(a)]
    assert not upwards, upwards
    # package faces (__init__) only hand names on: follow modules, not faces
    faces = {n for n, p, _ in modules() if p.name == '__init__.py'}
    edges = {a: {b for b in t if b not in faces} for a, t in graph.items() if a not in faces}
    state = {}

    def visit(node, trail):
        state[node] = 'open'
        for nxt in edges.get(node, ()):
            assert state.get(nxt) != 'open', f"import circle: {' -> '.join(trail + [nxt])}"
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 'done'

    for node in edges:
        if node not in state:
            visit(node, [node])


def test_no_module_passes_500_lines():
    long = {str(p.relative_to(PACKAGE)): n for _, p, _ in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_module_reads_another_objects_private_members():
    """``x._name`` only where ``x`` is ``self``/``cls`` (or a module alias
    such as ``torch._dynamo``, which is a library's own business)."""
    found = []
    for _, path, tree in modules():
        imports = {a.asname or a.name.split('.')[0] for node in ast.walk(tree)
                   if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith('_') \
                    and not node.attr.startswith('__'):
                base = node.value
                if isinstance(base, ast.Name) and base.id in {'self', 'cls'} | imports:
                    continue
                found.append(f'{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}')
    assert not found, found


def private_imports(name, path, tree):
    """``from x import _name`` (absolute or relative) and ``import
    native_pyg.x._y`` of a module: reaching into another module's insides."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _absolute(name, path, node) is not None:
            found += [f'{path.relative_to(PACKAGE)}:{node.lineno} {a.name}'
                      for a in node.names if a.name.startswith('_')
                      and not a.name.startswith('__')]
        elif isinstance(node, ast.Import):
            found += [f'{path.relative_to(PACKAGE)}:{node.lineno} {a.name}'
                      for a in node.names if a.name.startswith('native_pyg') and any(
                          p.startswith('_') and not p.startswith('__')
                          for p in a.name.split('.'))]
    return found


def test_no_module_imports_another_modules_private_names():
    found = [f for name, path, tree in modules() for f in private_imports(name, path, tree)]
    assert not found, found


def test_relative_imports_are_read():
    """The checks above see relative imports: an upward import and a
    private name planted in evaluation/ are both found."""
    source = 'from ..training import trainer\nfrom .ranks import _combine\n'
    path = PACKAGE / 'evaluation' / 'planted.py'
    tree = ast.parse(source)
    name = 'native_pyg.evaluation.planted'
    assert 'native_pyg.training.trainer' in imported(name, path, tree)
    assert any(layer(m) > layer(name) for m in imported(name, path, tree))
    assert private_imports(name, path, tree) == ['evaluation/planted.py:2 _combine']


def documented_floors(text: str):
    """``{package: {module: floor}}`` from the ``## Layers inside packages``
    section of docs/architecture.md: one line per package, ``package: a, b |
    c | d``, floors bottom first, separated by ``|``."""
    section = text.split('## Layers inside packages', 1)[1].split('\n## ', 1)[0]
    block = section.split('```', 2)[1]
    floors = {}
    for line in block.strip().splitlines():
        package, _, rest = line.partition(':')
        floors[package.strip()] = {m.strip(): i for i, group in enumerate(rest.split('|'))
                                   for m in group.split(',') if m.strip()}
    return floors


def floor_violations(graph, floors):
    """Imports between two modules of one package that do not go to a lower
    documented floor, and modules no floor lists."""
    found = []
    for a, targets in graph.items():
        parts = a.split('.')
        if len(parts) != 3 or parts[1] not in floors:
            continue  # top-level modules and package faces
        package, here = floors[parts[1]], parts[2]
        if here not in package:
            found.append(f'{a}: on no floor of docs/architecture.md')
            continue
        for b in targets:
            other = b.split('.')
            if len(other) == 3 and other[1] == parts[1] and other[2] in package \
                    and package[other[2]] >= package[here]:
                found.append(f'{a} -> {b}: floor {package[here]} imports floor {package[other[2]]}')
    return found


def test_inside_every_package_imports_run_down_its_documented_floors():
    floors = documented_floors(ARCHITECTURE.read_text())
    packages = {p.name for p in PACKAGE.iterdir() if (p / '__init__.py').exists()}
    assert set(floors) == packages, set(floors) ^ packages
    graph = {name: imported(name, path, tree) for name, path, tree in modules()}
    assert not floor_violations(graph, floors)


def test_a_planted_import_up_a_packages_floors_is_found():
    """The floor check reads relative imports too: ``evaluation/ranks.py``
    importing the full protocol (a floor above it) fails it."""
    floors = documented_floors(ARCHITECTURE.read_text())
    path = PACKAGE / 'evaluation' / 'ranks.py'
    tree = ast.parse(path.read_text() + '\nfrom .full import LinkPredictionEvaluator\n')
    graph = {'native_pyg.evaluation.ranks': imported('native_pyg.evaluation.ranks', path, tree)}
    assert floor_violations(graph, floors) == [
        f"native_pyg.evaluation.ranks -> native_pyg.evaluation.full: floor "
        f"{floors['evaluation']['ranks']} imports floor {floors['evaluation']['full']}"]


def test_every_module_has_its_test_file_or_a_named_home():
    """``tests/<package>/test_<module>.py``, or a row of tests/README.md
    naming test files that exist."""
    tests = PACKAGE.parent / 'tests'
    homes = {}
    for row in (tests / 'README.md').read_text().splitlines():
        cells = [c.strip() for c in row.strip('|').split('|')]
        if len(cells) == 2 and cells[0].startswith('`') and cells[0].endswith('.py`'):
            homes[cells[0].strip('`')] = re.findall(r'`([^`]+\.py)`', cells[1])
    missing, broken = [], []
    for _, path, _ in modules():
        rel = path.relative_to(PACKAGE)
        if path.name in ('__init__.py', '__main__.py'):
            continue
        if (tests / rel.parent / f'test_{path.stem}.py').exists():
            continue
        if str(rel) not in homes:
            missing.append(str(rel))
        broken += [f'{rel}: {t}' for t in homes.get(str(rel), ())
                   if not (PACKAGE.parent / t).exists()]
    assert not missing and not broken, (missing, broken)
