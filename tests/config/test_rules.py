"""The rule types, a key declared with its rule, and the checks that read
the rules from the fields (native_pyg/config/rules.py)."""
import dataclasses

import pytest

from native_pyg.config.rules import (Choices, HopList, Range, check_section, coerce,
                                     section_rules)
from native_pyg.config.rules import key as declare
from native_pyg.config.run_config import RunConfig, TrainConfig


def test_ranges_and_choices_say_what_they_allow():
    lr = Range(0.0, 10.0, low_open=True)
    assert lr.interval() == '(0, 10]' and lr.describe() == 'in (0, 10]'
    assert lr.violation(0.0) == '> 0 (range (0, 10])' and lr.violation(10.0) is None
    assert Range(1, nullable=True).violation(0) == 'null or >= 1'
    assert Range(1, nullable=True).violation(None) is None
    assert Range(0).violation(float('nan')) == 'a finite number >= 0'
    assert Range(0).violation(True) == '>= 0'  # a bool is no number
    device = Choices(('cpu', 'cuda:N'))
    assert device.violation('cuda:3') is None and device.violation('cuda:') is not None
    assert device.violation('cuda:1x') == 'one of cpu, cuda:N'


def test_coerce_undoes_yamls_quirks_and_names_a_wrong_type():
    assert coerce('float', 1e-3, '1e-4', 'src: training.lr') == 1e-4
    assert coerce('int', 100, '1e3', 'src: training.epochs') == 1000
    assert coerce('Optional[List[int]]', None, '10,5', 'x') == [10, 5]
    with pytest.raises(ValueError, match=r'^src: training\.epochs: expected an integer, '
                                         r"got '1\.5e0'$"):
        coerce('int', 100, '1.5e0', 'src: training.epochs')
    with pytest.raises(ValueError, match='expected true/false'):
        coerce('bool', True, 'yes', 'x')


def test_the_checks_read_the_rule_declared_beside_the_key():
    @dataclasses.dataclass
    class Toy:
        width: int = declare(2, Range(1, 4))
        mode: str = declare('a', Choices(('a', 'b')))
        flag: bool = False

    assert dict(section_rules(Toy)) == {'width': Range(1, 4), 'mode': Choices(('a', 'b'))}
    assert Toy() == Toy(2, 'a', False)  # the declared defaults
    check_section(Toy, {'width': 4, 'mode': 'b', 'flag': True}, 'src: toy')
    with pytest.raises(ValueError) as info:
        check_section(Toy, {'mode': 'c', 'width': 5}, 'src: toy')
    # the first key in declaration order, whatever order the values come in
    assert str(info.value) == 'src: toy.width: must be <= 4 (range [1, 4]), got 5'
    with pytest.raises(TypeError):
        section_rules(TrainConfig)['lr'] = Range()  # a read-only view of the fields


def test_a_non_bool_key_without_a_rule_is_refused():
    @dataclasses.dataclass
    class Unruled:
        size: int = 3

    with pytest.raises(TypeError, match=r'Unruled\.size: a non-bool key needs a rule'):
        section_rules(Unruled)


def test_hop_lists_and_free_text():
    assert HopList().violation([10, 5]) is None and HopList().violation([-1]) is None
    assert HopList().violation([True]) is not None and HopList().violation(['a']) is not None
    run = RunConfig().override(['data.text_model=anything', 'model.modalities=[a, b]'])
    assert run.data.text_model == 'anything' and run.model.modalities == ['a', 'b']
