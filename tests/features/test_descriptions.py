"""A text modality from entity descriptions."""
import sys

import numpy as np
import pytest

import native_pyg.features.descriptions as descriptions
from native_pyg.features.descriptions import DescriptionRows
from native_pyg.features.text import DEFAULT_TEXT_MODEL, encode_texts

INDEX = {'Paris': 0, 'Libreville': 1, 'Lake Bled': 2, 'Tokyo': 3}


def needs_text_extra():
    pytest.importorskip('sentence_transformers', reason='the text extra is not installed '
                                                        "(pip install -e '.[text]')")


class FakeEncoder:
    """Deterministic 4-d rows; records what it was asked to encode."""
    max_seq_length = 12

    def __init__(self):
        self.calls = []

    def get_embedding_dimension(self):
        return 4

    def encode(self, texts, **kwargs):
        self.calls.append((list(texts), kwargs))
        return np.array([[len(t), t.count(' '), ord(t[0]), 1.0] for t in texts], np.float32)


def test_the_encoder_is_loaded_once_lazily_and_encodes_only_the_chunk(monkeypatch):
    loads, encoder = [], FakeEncoder()
    monkeypatch.setattr(descriptions, 'load_text_encoder',
                        lambda model, device: loads.append((model, device)) or encoder)
    source = DescriptionRows({0: 'a lake', 2: ' the sea ', 3: '   '}, model='m',
                             device='cuda:1', batch_size=7)
    assert loads == []  # nothing loaded yet
    chunk = source.rows(np.array([3, 2, 1], dtype=np.int64))
    assert source.dim == 4 and loads == [('m', 'cuda:1')]
    assert [texts for texts, _ in encoder.calls] == [['the sea']]  # only entity 2 has one
    _, kwargs = encoder.calls[0]
    assert kwargs['batch_size'] == 7 and kwargs['normalize_embeddings'] is False
    assert kwargs['show_progress_bar'] is False
    np.testing.assert_array_equal(chunk.rows, [[0, 0, 0, 0], [7, 1, ord('t'), 1],
                                               [0, 0, 0, 0]])
    assert chunk.rows.dtype == np.float32 and chunk.mask.tolist() == [False, True, False]
    assert chunk.counts.dtype == np.int32 and chunk.counts.tolist() == [0, 1, 0]
    assert chunk.skipped == {}
    assert source.rows(np.array([1])).mask.tolist() == [False]
    assert len(encoder.calls) == 1 and len(loads) == 1  # nothing to encode; no reload
    settings = source.settings()
    assert settings['max_seq_length'] == 12 and settings['model'] == 'm'
    assert settings['model_path'] is None and settings['texts'] == 2


def test_settings_follow_the_texts(monkeypatch, tmp_path):
    monkeypatch.setattr(descriptions, 'load_text_encoder', lambda model, device: FakeEncoder())
    base = DescriptionRows({0: 'a lake', 2: 'the sea'}).settings()
    assert DescriptionRows({2: 'the sea', 0: 'a lake'}).settings() == base
    assert DescriptionRows({0: 'a lake', 2: 'the Sea'}).settings() != base
    assert DescriptionRows({0: 'a lake', 1: 'the sea'}).settings() != base
    # no two tables hash alike by moving text between entities' boundaries
    assert DescriptionRows({0: 'a', 1: '1\ta'}).settings() != \
        DescriptionRows({0: 'a\t1\ta'}).settings()
    local = DescriptionRows({0: 'a lake'}, model=str(tmp_path)).settings()
    assert local['model_path'] == str(tmp_path.resolve())


def test_without_sentence_transformers_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'sentence_transformers', None)  # import fails
    source = DescriptionRows({0: 'a lake'})
    with pytest.raises(ImportError, match=r"need sentence-transformers: pip install "
                                          r"'native_pyg\[text\]'"):
        source.dim


def test_rows_are_the_default_model_encodings(tmp_path):
    needs_text_extra()
    path = tmp_path / 'descriptions.tsv'
    path.write_text('# entity\tdescription\n'
                    'Paris\tCapital of France.\n'
                    'Lake Bled\tA lake in the Julian Alps.\n'
                    'Atlantis\tA sunken island.\n'
                    'Paris\tIt lies on the Seine.\n')
    source = DescriptionRows.from_table(str(path), INDEX)
    assert source.report.unknown == 1 and source.report.entities == 2
    assert source.texts == {0: 'Capital of France. It lies on the Seine.',
                            2: 'A lake in the Julian Alps.'}  # rows joined in file order
    assert source.dim == 384
    chunk = source.rows(np.array([2, 1, 0, 3], dtype=np.int64))
    want = encode_texts(['A lake in the Julian Alps.',
                         'Capital of France. It lies on the Seine.'], progress=False).numpy()
    assert chunk.rows.dtype == np.float32 and chunk.rows.shape == (4, 384)
    np.testing.assert_allclose(chunk.rows[[0, 2]], want, atol=1e-5)
    assert not chunk.rows[[1, 3]].any()  # no description: zero rows, masked
    assert chunk.mask.tolist() == [True, False, True, False]
    assert chunk.counts.tolist() == [1, 0, 1, 0]
    settings = source.settings()
    assert settings['model'] == DEFAULT_TEXT_MODEL and settings['max_seq_length'] == 256


def test_a_long_text_is_truncated_to_max_seq_length_tokens():
    needs_text_extra()
    words = ['apple', 'river', 'house', 'green', 'music', 'table', 'light', 'stone', 'city',
             'paper']  # one token each
    text = ' '.join(words[(i * 7 + i // 10) % 10] for i in range(800))
    # 256 tokens read: [CLS], the first 254 words, [SEP]
    kept = ' '.join(text.split()[:254])
    source = DescriptionRows({0: text, 1: kept, 2: ' '.join(text.split()[:200])})
    assert source.max_seq_length == 256
    assert [len(source.encoder.tokenizer.tokenize(t)) for t in (text, kept)] == [800, 254]
    rows = source.rows(np.arange(3)).rows
    assert np.isfinite(rows).all()
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-5)
    assert np.abs(rows[0] - rows[2]).max() > 1e-3  # a shorter cut is another row
