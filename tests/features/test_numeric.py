"""A numeric modality from entity attributes."""
import json

import numpy as np
import pytest

from native_pyg.data.readers import MMKGFormatError
from native_pyg.features.numeric import NumericRows, parse_value

INDEX = {'Paris': 0, 'Bled': 1, 'Libreville': 2, 'Tokyo': 3, 'Atlantis': 4}
# attribute columns, sorted: area, founded, population
TABLE = ('# entity\tattribute\tvalue\n'
         'Paris\tpopulation\t5\n'
         'Paris\tarea\t0\n'              # a real zero
         'Bled\tpopulation\t20\n'
         'Libreville\tpopulation\t20\n'
         'Paris\tpopulation\t15\n'       # Paris: the mean of 5 and 15
         'Bled\tfounded\t2000-01-01\n'
         'Tokyo\tfounded\t2000-07-02\n'
         'Libreville\tarea\t5\n'
         'Tokyo\tpopulation\t1e3\n'
         'Unknown City\tpopulation\t7\n')
POPULATION = np.array([10., 20., 20., 1000.])  # entities 0..3


def table(tmp_path, text=TABLE):
    path = tmp_path / 'numeric.tsv'
    path.write_text(text)
    return str(path)


def all_rows(source, n=5):
    return source.rows(np.arange(n, dtype=np.int64))


def test_values_and_dates_are_parsed():
    assert parse_value(' 3.5 ') == 3.5 and parse_value('-1e3') == -1000.0
    assert parse_value('2000-01-01') == 2000.0
    assert parse_value('2000-07-02') == pytest.approx(2000 + 183 / 366, abs=1e-12)
    assert parse_value('2001-03') == pytest.approx(2001 + 59 / 365, abs=1e-12)
    assert parse_value('1987') == 1987.0
    for bad in ('1,234', 'abc', 'nan', 'inf', '-inf', '2001-02-30', '2001-13', ''):
        assert parse_value(bad) is None, bad


def test_raw_values_with_presence_columns(tmp_path):
    source = NumericRows.from_table(table(tmp_path), INDEX, 5, normalize='none')
    assert source.attributes == ['area', 'founded', 'population'] and source.dim == 6
    chunk = all_rows(source)
    assert chunk.rows.dtype == np.float32 and chunk.rows.shape == (5, 6)
    want = np.array([
        # area, founded, population | presence
        [0., 0., 10., 1., 0., 1.],    # Paris: a real area of 0 is present
        [0., 2000., 20., 0., 1., 1.],  # Bled: no area -> value 0, presence 0
        [5., 0., 20., 1., 0., 1.],
        [0., 2000 + 183 / 366, 1000., 0., 1., 1.],
        [0., 0., 0., 0., 0., 0.],     # Atlantis: nothing
    ], dtype=np.float32)
    np.testing.assert_array_equal(chunk.rows, want)
    assert chunk.mask.tolist() == [True, True, True, True, False]
    assert chunk.counts.dtype == np.int32 and chunk.counts.tolist() == [2, 2, 2, 2, 0]
    assert chunk.skipped == {}
    assert source.report.rows == 10 and source.report.unknown == 1
    assert source.report.entities == 4


def test_zscore_minmax_rank_match_hand_computation(tmp_path):
    path = table(tmp_path)
    pop = POPULATION
    area = np.array([0., 5.])  # Paris, Libreville
    founded = np.array([2000., 2000 + 183 / 366])  # Bled, Tokyo
    expected = {
        'zscore': (lambda x: (x - x.mean()) / x.std()),  # population std (ddof=0)
        'minmax': (lambda x: (x - x.min()) / (x.max() - x.min())),
    }
    for normalize, scale in expected.items():
        rows = all_rows(NumericRows.from_table(path, INDEX, 5, normalize)).rows
        np.testing.assert_allclose(rows[:4, 2], scale(pop), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rows[[0, 2], 0], scale(area), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rows[[1, 3], 1], scale(founded), rtol=1e-6, atol=1e-6)
        assert rows[[1, 3], 0].tolist() == [0, 0] and rows[4].tolist() == [0] * 6
    rows = all_rows(NumericRows.from_table(path, INDEX, 5, 'rank')).rows
    # 10 < 20 = 20 < 1000: ranks 0, 1.5, 1.5, 3 out of n - 1 = 3
    np.testing.assert_allclose(rows[:4, 2], [0, 0.5, 0.5, 1])
    np.testing.assert_allclose(rows[[0, 2], 0], [0, 1])
    np.testing.assert_array_equal(rows[:, 3:], all_rows(
        NumericRows.from_table(path, INDEX, 5, 'none')).rows[:, 3:])


def test_constant_and_single_attributes():
    values = [(0, 'const', 4.0), (1, 'const', 4.0), (2, 'single', -7.0)]
    # zscore, minmax: 0; rank: a tie of all n at average rank (n - 1) / 2 -> 0.5
    for normalize, tied in (('zscore', 0), ('minmax', 0), ('rank', 0.5)):
        rows = NumericRows(values, 3, normalize).rows(np.arange(3)).rows
        np.testing.assert_array_equal(rows, [[tied, 0, 1, 0], [tied, 0, 1, 0], [0, 0, 0, 1]])


def test_a_subset_in_any_order_gives_the_same_rows(tmp_path):
    source = NumericRows.from_table(table(tmp_path), INDEX, 5, 'zscore')
    full = all_rows(source)
    pick = np.array([3, 0, 4, 3, 1], dtype=np.int64)
    part = source.rows(pick)
    np.testing.assert_array_equal(part.rows, full.rows[pick])
    np.testing.assert_array_equal(part.mask, full.mask[pick])
    np.testing.assert_array_equal(part.counts, full.counts[pick])
    empty = source.rows(np.zeros(0, dtype=np.int64))
    assert empty.rows.shape == (0, 6) and empty.mask.shape == (0,)
    with pytest.raises(IndexError):
        source.rows(np.array([5]))


def test_a_bad_value_names_file_line_and_attribute(tmp_path):
    for bad in ('abc', '1,234', 'nan', 'inf', '2001-02-30'):
        path = table(tmp_path, f'Paris\tarea\t105\n\nBled\tpopulation\t{bad}\n')
        with pytest.raises(MMKGFormatError) as error:
            NumericRows.from_table(path, INDEX, 5)
        assert str(error.value) == (f"{path}:3: attribute 'population': {bad!r} is not a "
                                    f"number or a date (YYYY-MM-DD)")


def test_a_table_of_unknown_entities_only_is_an_error(tmp_path):
    path = table(tmp_path, 'Nowhere\tarea\t1\n')
    with pytest.raises(MMKGFormatError, match=r"no attribute of an entity of the dataset .*"
                                              r"'Nowhere'"):
        NumericRows.from_table(path, INDEX, 5)


def test_settings_change_when_a_value_changes(tmp_path):
    base = NumericRows.from_table(table(tmp_path), INDEX, 5).settings()
    json.dumps(base)  # JSON values only
    assert base['normalize'] == 'zscore'
    assert base['attributes'] == ['area', 'founded', 'population']
    again = NumericRows.from_table(table(tmp_path), INDEX, 5).settings()
    assert again == base
    changed = NumericRows.from_table(table(tmp_path, TABLE.replace('1e3', '1e4')),
                                     INDEX, 5).settings()
    assert changed != base
    # two entities swap their values: the statistics stay, the rows (and settings) do not
    swapped = TABLE.replace('Bled\tpopulation\t20', 'Bled\tpopulation\t1e3').replace(
        'Tokyo\tpopulation\t1e3', 'Tokyo\tpopulation\t20')
    swapped = NumericRows.from_table(table(tmp_path, swapped), INDEX, 5).settings()
    assert swapped['statistics'] == base['statistics'] and swapped != base
    assert NumericRows.from_table(table(tmp_path), INDEX, 5, 'rank').settings() != base


def test_arguments_are_checked():
    with pytest.raises(ValueError, match='normalize must be one of'):
        NumericRows([(0, 'a', 1.0)], 1, normalize='log')
    with pytest.raises(ValueError, match=r'entity id 3 is outside \[0, 2\)'):
        NumericRows([(3, 'a', 1.0)], 2)
    with pytest.raises(ValueError, match='not finite'):
        NumericRows([(0, 'a', float('nan'))], 1)
    huge = [(0, 'mass', 1e300), (1, 'mass', -1e300)]
    with pytest.raises(ValueError, match="attribute 'mass': values beyond the range of float32"):
        NumericRows(huge, 2, 'none')
    assert NumericRows(huge, 2, 'rank').rows(np.arange(2)).rows[:, 0].tolist() == [1, 0]
