"""The package's shape: imports run one way (data -> nn -> evaluation ->
training -> pipeline -> experiments -> cli) with no circle, no module passes
600 lines, and no module reaches into another object's private members."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'native_pyg'
#: layer of each top-level part of the package; an import may only go to the same or a lower one
LAYERS = {'data': 0, 'features': 0, 'nn': 1, 'datasets': 1, 'evaluation': 2, 'training': 3,
          'pipeline': 4, 'feature_placement': 4, 'prediction': 4, 'completion': 5, 'experiments': 5, 'tuning': 5, 'cli': 6, '__main__': 6, '__init__': 0}
MAX_LINES = 600


def modules():
    return _MODULES


def _parse():
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        yield name, path, ast.parse(path.read_text(), str(path))


_MODULES = list(_parse())


def imported(name, tree):
    """The native_pyg modules a module imports (anywhere in it)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith('native_pyg')}
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith('native_pyg') and node.level == 0:
            out.add(node.module)
            out |= {f'{node.module}.{a.name}' for a in node.names}
    known = {n for n, _, _ in modules()}
    return {m for m in out if m in known and m != name}


def layer(module):
    parts = module.split('.')
    return LAYERS[parts[1] if len(parts) > 1 else '__init__']


def test_imports_form_no_circle_and_never_run_upwards():
    graph = {name: imported(name, tree) for name, _, tree in modules()}
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


def test_no_module_passes_600_lines():
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
