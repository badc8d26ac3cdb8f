"""Readers of the raw-input tables (entity<TAB>value, entity<TAB>attribute<TAB>value)."""
import pytest

from native_pyg.data.readers import MMKGFormatError
from native_pyg.features.raw_tables import (TableReport, read_entity_attributes,
                                            read_entity_values)

INDEX = {'Paris': 0, 'Lake Bled': 1, 'Libreville': 2}


def test_values_keep_several_rows_per_entity_in_file_order(tmp_path):
    path = tmp_path / 'images.tsv'
    path.write_text('# entity<TAB>image\n'
                    'Paris\timg/paris 2.jpg\n'
                    '\n'
                    'Lake Bled\tbled.png\n'
                    '   \n'
                    'Paris\timg/paris 1.jpg\n'
                    '  # an indented comment\n'
                    'Paris\tthe text\twith a tab \n', encoding='utf-8')
    values, report = read_entity_values(str(path), INDEX)
    assert values == {0: ['img/paris 2.jpg', 'img/paris 1.jpg', 'the text\twith a tab'],
                      1: ['bled.png']}
    assert (report.rows, report.entities, report.unknown) == (4, 2, 0)
    assert report.unknown_example is None
    assert report.line() == 'images.tsv: 4 rows, 2 entities'


def test_unknown_entities_are_counted_with_an_example(tmp_path):
    path = tmp_path / 'images.tsv'
    path.write_text('Atlantis\ta.jpg\nParis\tp.jpg\nEl Dorado\te.jpg\nAtlantis\tb.jpg\n')
    values, report = read_entity_values(str(path), INDEX)
    assert values == {0: ['p.jpg']}
    assert report == TableReport(str(path), rows=4, unknown=3, unknown_example='Atlantis',
                                 entities=1)
    assert report.line() == ("images.tsv: 4 rows, 1 entity; 3 rows name entities not in the "
                             "dataset (e.g. 'Atlantis')")
    one = TableReport('x/d.tsv', rows=1, unknown=1, unknown_example='Atlantis')
    assert one.line() == ("d.tsv: 1 row, 0 entities; 1 row names an entity not in the "
                          "dataset (e.g. 'Atlantis')")


def test_a_row_without_a_tab_names_its_line(tmp_path):
    path = tmp_path / 'descriptions.tsv'
    path.write_text('# header\n\nParis\tCapital of France.\nLake Bled is a lake\n')
    with pytest.raises(MMKGFormatError) as error:
        read_entity_values(str(path), INDEX)
    message = str(error.value)
    assert message.startswith(f'{path}:4: expected entity<TAB>value, got ')
    assert "'Lake Bled is a lake'" in message and 'separated by a TAB' in message


@pytest.mark.parametrize('line', ['Paris\t', 'Paris\t   ', '\tan image.jpg'])
def test_an_empty_field_is_an_error(tmp_path, line):
    path = tmp_path / 'images.tsv'
    path.write_text(f'Paris\tp.jpg\n{line}\n')
    with pytest.raises(MMKGFormatError, match=r':2: expected entity<TAB>value'):
        read_entity_values(str(path), INDEX)


def test_a_bom_and_crlf_file_is_read(tmp_path):
    path = tmp_path / 'descriptions.tsv'
    path.write_bytes('\ufeffParis\tCapitale de la France\r\n\r\nLake Bled\tJezero\r\n'
                     .encode('utf-8'))
    values, report = read_entity_values(str(path), INDEX)
    assert values == {0: ['Capitale de la France'], 1: ['Jezero']}
    assert report.rows == 2
    attributes = tmp_path / 'numeric.tsv'
    attributes.write_bytes('\ufeffParis\tpopulation\t2102650\r\n'.encode('utf-8'))
    assert read_entity_attributes(str(attributes), INDEX)[0] == [(0, 'population', '2102650', 1)]


def test_attributes_keep_line_numbers(tmp_path):
    path = tmp_path / 'numeric.tsv'
    path.write_text('# entity\tattribute\tvalue\n'
                    'Paris\tpopulation\t2102650\n'
                    'Atlantis\tpopulation\t0\n'
                    '\n'
                    'Libreville\tfounded\t1849\n'
                    'Paris\tarea km2\t 105.4 \n')
    rows, report = read_entity_attributes(str(path), INDEX)
    assert rows == [(0, 'population', '2102650', 2), (2, 'founded', '1849', 5),
                    (0, 'area km2', '105.4', 6)]
    assert (report.rows, report.entities, report.unknown, report.unknown_example) == \
        (4, 2, 1, 'Atlantis')


@pytest.mark.parametrize('line, got', [('Paris\tpopulation', '2 fields'),
                                       ('Paris\tpopulation\t1\t2', '4 fields'),
                                       ('Paris population 2102650', '1 field '),
                                       ('Paris\t\t5', 'an empty field')])
def test_a_wrong_field_count_names_its_line(tmp_path, line, got):
    path = tmp_path / 'numeric.tsv'
    path.write_text(f'Paris\tarea\t105.4\n\n{line}\n')
    with pytest.raises(MMKGFormatError) as error:
        read_entity_attributes(str(path), INDEX)
    message = str(error.value)
    assert message.startswith(f'{path}:3: expected entity<TAB>attribute<TAB>value, got {got}')
