"""Reading a run's YAML file: a duplicate key, invalid YAML and alias bombs
are one-line errors naming the file and line (native_pyg/config/yaml_reader.py)."""
import pytest

from native_pyg.config.run_config import RunConfig
from native_pyg.config.yaml_reader import load_yaml


def test_a_duplicate_yaml_key_is_refused_with_its_line(tmp_path):
    config = tmp_path / 'dup.yaml'
    config.write_text('dataset: synthetic\ntraining:\n  lr: 1.0e-3\n  epochs: 3\n'
                      '  lr: 1.0e-2\nmodel:\n  margin: 4.0\n')
    with pytest.raises(ValueError) as info:
        RunConfig.from_yaml(str(config))
    assert str(info.value) == (f"{config}: line 5: duplicate key 'training.lr' "
                               f"(first given on line 3)")
    config.write_text('training:\n  lr: 1.0e-3\nmodel:\n  margin: 4.0\ntraining:\n'
                      '  epochs: 3\n')
    with pytest.raises(ValueError, match=r"line 5: duplicate key 'training' \(first given on "
                                         r"line 1\)"):
        RunConfig.from_yaml(str(config))


def test_same_keys_in_different_sections_and_merge_keys_are_fine(tmp_path):
    config = tmp_path / 'ok.yaml'
    config.write_text('model:\n  margin: 4.0\ntraining:\n  ranking_margin: 2.0\n'
                      '  num_neighbors: [5, 5]\n')
    assert RunConfig.from_yaml(str(config)).model.margin == 4.0
    config.write_text('base: &b {lr: 1.0e-3, epochs: 2}\ntraining:\n  <<: *b\n  lr: 0.5\n')
    assert load_yaml(str(config))['training'] == {'lr': 0.5, 'epochs': 2}
    config.write_text('loop: &l [1, *l]\n')  # expands without end: refused, with its line
    with pytest.raises(ValueError, match='line 1 .an alias refers to a node that contains it'):
        load_yaml(str(config))


def test_aliases_that_expand_past_the_bound_are_refused_fast(tmp_path):
    config = tmp_path / 'bomb.yaml'  # 9^12 nodes: walking them would never end
    levels = ['  - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'] + [
        f'  - &a{i} [' + ', '.join([f'*a{i - 1}'] * 9) + ']' for i in range(1, 12)]
    config.write_text('model:\n  modalities:\n' + '\n'.join(levels) + '\n')
    with pytest.raises(ValueError, match=r'bomb.yaml: invalid YAML at line \d+ .aliases expand'):
        RunConfig.from_yaml(str(config))
    config.write_text('a: &a [1, 2]\nmodel:\n  modalities: [image]\nb: [*a, *a]\n')
    with pytest.raises(ValueError, match="unknown section"):  # a small alias is fine
        RunConfig.from_yaml(str(config))


def test_invalid_yaml_is_one_line_with_the_line(tmp_path):
    config = tmp_path / 'bad.yaml'
    config.write_text('training:\n  lr: [1\n  epochs: 3\n')
    with pytest.raises(ValueError) as info:
        RunConfig.from_yaml(str(config))
    assert str(info.value).startswith(f'{config}: invalid YAML at line ')
    assert '\n' not in str(info.value)
    with pytest.raises(ValueError, match=r"--set 'training.lr=\[1': the value is not valid YAML"):
        RunConfig().override(['training.lr=[1'])
