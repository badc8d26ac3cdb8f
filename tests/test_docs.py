"""The README's snippets run as written, and no doc names a file that is not
there (issue 39)."""
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def readme_block(containing: str) -> str:
    blocks = re.findall(r'```python\n(.*?)```', (REPO / 'README.md').read_text(), re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_readme_gat_encoder_snippet_runs_as_written():
    scope = {}
    exec(readme_block('GATEncoder'), scope)  # our own README, nothing from outside
    model = scope['model']
    assert model.entity_dim == 64 and type(model.structural_encoder).__name__ == 'GATEncoder'
    # a wrong width: one line naming the width expected, at construction
    with pytest.raises(ValueError) as e:
        scope['NativE'].from_data(scope['data'], hidden_channels=32,
                                  encoder=scope['GATEncoder'](32))
    assert '\n' not in str(e.value) and 'x [n, 64] (model.entity_dim' in str(e.value)


def test_an_encoder_returning_the_wrong_shape_is_refused():
    from native_pyg.nn.structural_encoder import check_encoder_width

    class Halves(torch.nn.Module):
        def forward(self, x, edge_index, edge_type):
            return x[:, : x.size(1) // 2]

    with pytest.raises(ValueError, match=r'it returned \[2, 4\]'):
        check_encoder_width(Halves(), 8)
    check_encoder_width(_Same(), 8)  # the right width passes


class _Same(torch.nn.Module):
    def forward(self, x, edge_index, edge_type):
        return x


#: docs whose file paths must exist (the generated dataset cards and history aside)
DOCS = ['README.md', 'datasets/README.md', *sorted(str(p.relative_to(REPO)) for p in
                                                   (REPO / 'docs').glob('*.md')),
        *sorted(str(p.relative_to(REPO)) for p in (REPO / 'datasets').glob('*.md')),
        'examples/my_mmkg/README.md']
#: a repository path: a top folder of this repository, then a file name with an extension
PATH = re.compile(r'(?<![\w/.-])((?:native_pyg|tests|benchmarks|examples|docs|datasets)'
                  r'/[\w./-]*\.(?:py|md|yaml|sh|txt|tsv|npy|json))\b')


@pytest.mark.parametrize('doc', sorted(set(DOCS)))
def test_every_repository_path_a_doc_names_exists(doc):
    text = (REPO / doc).read_text()
    missing = sorted({p for p in PATH.findall(text) if not (REPO / p).exists()
                      and '*' not in p and '<' not in p})
    assert not missing, f"{doc} names files that do not exist: {missing}"


def test_the_synthetic_row_of_the_dataset_table_matches_the_data():
    from native_pyg.data import split_triples
    from native_pyg.datasets import SyntheticMMKG
    row = next(l for l in (REPO / 'datasets' / 'README.md').read_text().splitlines()
               if l.startswith('| [synthetic]'))
    cells = [c.strip() for c in row.split('|')]
    data = SyntheticMMKG(seed=0)[0]
    splits = ' / '.join(f"{split_triples(data, s).size(0):,}" for s in ('train', 'valid', 'test'))
    assert cells[2:5] == [f"{data['entity'].num_nodes:,}", str(data.num_relations), splits]
