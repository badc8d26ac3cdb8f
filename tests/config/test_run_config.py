"""Every config key's range or choices, declared beside the key in
native_pyg/config/run_config.py, and what a run config accepts and refuses."""
import dataclasses
import glob
import os
import os.path as osp
import re

import pytest

from native_pyg.nn import SCORERS
from native_pyg.nn.comat import GP_ON
from native_pyg.nn.gnn import COMPOSITIONS, STRUCTURAL_ENCODERS
from native_pyg.nn.redaf import FUSIONS, MISSING
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig
from native_pyg.config.rules import (CORRUPT_SIDES, FREE, LOSS_NAMES, RULE, TABLE_OPTIMIZERS,
                                     Choices, Range, section_rules)
from native_pyg.training.losses import LOSSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SECTIONS = {'model': ModelConfig, 'training': TrainConfig, 'data': DataConfig}
#: each section's rules, read from its fields
RULES = {s: section_rules(cls) for s, cls in SECTIONS.items()}


def _refused(assignment: str, source: str = '--set') -> str:
    """The one-line error of ``RunConfig().override([assignment])``."""
    with pytest.raises(ValueError) as info:
        RunConfig().override([assignment])
    message = str(info.value)
    assert '\n' not in message and message.startswith(f'{source}: ')
    return message


def _fields(kind: str):
    return [(s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)
            if kind in str(f.type) and 'List' not in str(f.type)]


@pytest.mark.parametrize('assignment, expected', [
    ('model.margin=-5', 'model.margin: must be > 0, got -5.0'),
    ('model.num_bases=-2', 'model.num_bases: must be null or >= 1'),
    ('training.gp_on=bogus', "training.gp_on: must be one of both, head, got 'bogus'"),
    ('model.hidden_channels=1e11', 'model.hidden_channels: must be <= 65536 (range [1, 65536]), '
                                   'got 100000000000'),
    ('model.hidden_channels=100000000000', 'model.hidden_channels: must be <= 65536'),
    ('training.mu=.nan', 'training.mu: must be a finite number >= 0, got nan'),
    ('training.adv_temperature=-1', 'training.adv_temperature: must be >= 0, got -1.0'),
    ('model.epsilon=-1', 'model.epsilon: must be > 0, got -1.0'),
    ('training.lr=.inf', 'training.lr: must be a finite number in (0, 10], got inf'),
    ('training.lr=0', 'training.lr: must be > 0 (range (0, 10]), got 0.0'),
    ('training.lr=1e39', 'training.lr: must be <= 10 (range (0, 10]), got 1e+39'),
    ('model.encoder_dropout=1', 'model.encoder_dropout: must be < 1 (range [0, 1)), got 1.0'),
    ('training.structure_dropout=1.0', 'training.structure_dropout: must be < 1'),
    ('training.num_neighbors=[3,-2]', 'training.num_neighbors: must be null or a non-empty '
                                      'list of integers >= 1 or -1 (all), got [3, -2]'),
    ('training.num_neighbors=[]', 'training.num_neighbors: must be null or a non-empty'),
    ('training.num_neighbors=[0]', 'training.num_neighbors: must be null'),
    ('training.seed=-1', 'training.seed: must be >= 0'),
    ('training.device=cuda:x', "training.device: must be one of auto, cpu, cuda, cuda:N, mps"),
    ('model.margin=true', 'model.margin: expected a number, got True'),
    ('model.margin=[1]', 'model.margin: expected a number, got [1]'),
    ('training.epochs=null', 'training.epochs: expected an integer, got None'),
])
def test_reported_values_are_one_line_errors(assignment, expected):
    assert expected in _refused(assignment)


FLOATS = _fields('float')


@pytest.mark.parametrize('value', ['.nan', '.inf', '-.inf', 'nan', '"-inf"'])
@pytest.mark.parametrize('section, key', FLOATS, ids=[f'{s}.{k}' for s, k in FLOATS])
def test_non_finite_floats_are_refused(section, key, value):
    message = _refused(f'{section}.{key}={value}')
    assert re.search(rf'{section}\.{key}: must be (null or )?a finite number', message)


def _outside(rule: Range):
    """Values just outside each bound of ``rule`` (a float rule gets floats)."""
    values = []
    if rule.low is not None:
        values.append(rule.low if rule.low_open else rule.low - 1)
    if rule.high is not None:
        values.append(rule.high if rule.high_open else rule.high + 1)
    return values


NUMERIC = [(s, k, v) for s, rules in RULES.items() for k, rule in rules.items()
           if isinstance(rule, Range) for v in _outside(rule)]


def test_every_numeric_key_has_a_range():
    numeric = set(_fields('int')) | set(FLOATS)
    assert numeric == {(s, k) for s, rules in RULES.items() for k, rule in rules.items()
                       if isinstance(rule, Range)}
    assert all(_outside(RULES[s][k]) for s, k in numeric)  # a bound to step over


@pytest.mark.parametrize('section, key, value', NUMERIC,
                         ids=[f'{s}.{k}={v}' for s, k, v in NUMERIC])
def test_a_value_outside_the_range_names_the_key_and_the_range(section, key, value, tmp_path):
    rule = RULES[section][key]
    message = _refused(f'{section}.{key}={value!r}')
    assert message.startswith(f'--set: {section}.{key}: must be ')
    assert message.endswith(f', got {value!r}')
    if rule.low is not None and rule.high is not None:
        assert f'(range {rule.interval()})' in message
    config = tmp_path / 'run.yaml'  # the same from a file, which it names
    config.write_text(f'{section}:\n  {key}: {value!r}\n')
    with pytest.raises(ValueError, match=rf'^{re.escape(str(config))}: {section}\.{key}: '
                                         rf'must be '):
        RunConfig.from_yaml(str(config))


def test_the_bounds_themselves_are_allowed():
    run = RunConfig().override([
        'training.lr=10', 'training.lrg=10', 'model.encoder_dropout=0',
        'training.structure_dropout=0.99', 'training.adv_temperature=0', 'training.mu=0',
        'training.beta=0', 'training.regul_rate=0', 'training.ranking_margin=0',
        'model.hidden_channels=65536', 'model.num_bases=1', 'model.num_blocks=null',
        'training.num_neighbors=[-1, 1]', 'training.stand_in_epochs=0',
        'training.eval_every=0', 'training.patience=0', 'training.seed=4294967295',
        'training.num_workers=0', 'training.shared_negatives=0', 'model.margin=1e30',
        'training.device=cuda:1', 'data.text_features=names', 'training.lrg=null'])
    assert run.training.lr == 10.0 and run.training.num_neighbors == [-1, 1]
    assert run.model.hidden_channels == 65536 and run.training.lrg is None
    assert RunConfig().override(['model.hidden_channels=1e2']).model.hidden_channels == 100


CHOICES = [(s, k) for s, rules in RULES.items() for k, rule in rules.items()
           if isinstance(rule, Choices)]


def test_every_key_has_a_rule_or_is_free_text_or_bool():
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert (f.name in RULES[section]) != (f.type == 'bool'), \
                f'{section}.{f.name} has no rule'
            assert RULES[section].get(f.name) is f.metadata.get(RULE)  # the rule is the field's
    assert {(s, k) for s, rules in RULES.items() for k, rule in rules.items() if rule is FREE} \
        == {('model', 'modalities'), ('data', 'text_model'), ('data', 'feature_store')}
    assert {k for s, k in CHOICES} == {f.name for cls in SECTIONS.values()
                                       for f in dataclasses.fields(cls) if 'str' in f.type
                                       and 'List' not in f.type} - {'text_model', 'feature_store'}


def test_the_choices_are_those_the_code_accepts():
    values = {k: RULES[s][k].values for s, k in CHOICES}
    assert values['scorer'] == tuple(SCORERS) == ('rotate', 'transe', 'distmult', 'complex')
    assert values['missing'] == MISSING and values['fusion'] == FUSIONS
    assert values['encoder'] == ('none', *STRUCTURAL_ENCODERS) == ('none', 'rgcn', 'compgcn')
    assert values['composition'] == tuple(COMPOSITIONS) == ('sub', 'mult', 'corr')
    assert values['encoder_input'] == ('structure', 'structure+modalities')
    assert values['loss'] == tuple(LOSSES) == LOSS_NAMES and values['gp_on'] == GP_ON
    assert values['table_optimizer'] == TABLE_OPTIMIZERS
    assert values['nan_rows'] == ('error', 'missing')
    assert RULES['data']['feature_store'] is FREE  # memory, disk or a store's path: checked on use
    assert values['corrupt_side'] == CORRUPT_SIDES == ('row', 'negative')
    assert values['text_features'] == ('names',) and RULES['data']['text_features'].nullable
    # evaluation sits above config: its protocols are the names config allows
    from native_pyg.evaluation.protocols import PROTOCOL_CHOICES, PROTOCOLS
    assert values['eval_protocol'] == PROTOCOL_CHOICES == ('auto', *PROTOCOLS)


@pytest.mark.parametrize('section, key', CHOICES, ids=[f'{s}.{k}' for s, k in CHOICES])
def test_every_string_key_lists_its_choices(section, key):
    rule = RULES[section][key]
    allowed = ', '.join((('null',) if rule.nullable else ()) + rule.values)
    assert _refused(f'{section}.{key}=bogus') == \
        f"--set: {section}.{key}: must be one of {allowed}, got 'bogus'"
    assert f'{section}.{key}: must be one of' in _refused(f'{section}.{key}=3')


@pytest.mark.parametrize('section, key', CHOICES, ids=[f'{s}.{k}' for s, k in CHOICES])
def test_every_choice_is_accepted(section, key):
    for value in RULES[section][key].values:
        value = value.replace(':N', ':0')
        assert getattr(getattr(RunConfig().override([f'{section}.{key}={value}']), section),
                       key) == value


def test_defaults_and_a_round_trip_are_valid():
    run = RunConfig()
    assert RunConfig.from_dict(run.to_dict()) == run


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(REPO, 'examples', 'configs',
                                                          '*.yaml'))),
                         ids=osp.basename)
def test_the_example_configs_load(path):
    run = RunConfig.from_yaml(path)
    assert run.dataset == osp.basename(path)[:-len('.yaml')]


def test_the_example_configs_are_there():
    assert len(glob.glob(osp.join(REPO, 'examples', 'configs', '*.yaml'))) >= 6


def test_a_yaml_file_names_itself_and_the_key(tmp_path):
    config = tmp_path / 'run.yaml'
    config.write_text('training:\n  mu: .nan\n')
    with pytest.raises(ValueError, match=rf'^{re.escape(str(config))}: training\.mu: must be '
                                         rf'a finite number >= 0, got nan$'):
        RunConfig.from_yaml(str(config))


def test_locate_makes_paths_absolute_and_keeps_dataset_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'my_kg').mkdir()
    run = RunConfig().locate('my_kg', '~/data')
    assert run.dataset == str(tmp_path / 'my_kg')
    assert run.root == os.path.join(os.path.expanduser('~'), 'data')
    named = RunConfig().locate('DB15K')
    assert named.dataset == 'DB15K' and named.root == RunConfig().root
    assert RunConfig().locate().dataset == RunConfig().dataset  # nothing given: unchanged
