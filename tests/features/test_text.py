"""A text modality from entity names."""
import sys
import warnings

import pytest
import torch

import native_pyg.features.text as text
from native_pyg.datasets import MMKGDataset, WildKGC
from native_pyg.features import clean_names, name_text_features
from tests.conftest import fill_wildkgc_root, needs_shared


def fake_encoder(calls):
    def encode(texts, *args, **kwargs):  # deterministic per text, 8-d
        calls.append(list(texts))
        return torch.stack([torch.tensor([float((hash(t) >> i) & 255) for i in range(8)])
                            for t in texts]) + 1
    return encode


@pytest.mark.parametrize('names, style, want', [
    (['<http://dbpedia.org/resource/Lake_Bled>', '<http://dbpedia.org/resource/Franciaorsz%C3%A1g>'],
     'dbpedia', ['Lake Bled', 'Franciaország']),
    (['Gilles_Mbang_Ondo', 'Libreville'], 'yago', ['Gilles Mbang Ondo', 'Libreville']),
    (['organic compound', ' freon '], 'plain', ['organic compound', 'freon']),
])
def test_names_are_cleaned_per_style_and_detected(names, style, want):
    assert clean_names(names, style) == (want, style)
    assert clean_names(names, 'auto') == (want, style)


def test_wikidata_ids_have_no_text():
    with pytest.raises(ValueError, match='Wikidata ids'):
        clean_names(['http://www.wikidata.org/entity/Q370252', 'Q42'])


def test_name_features_are_cached_and_keyed_by_model(tmp_path):
    calls = []
    names = ['Lake_Bled', 'Libreville', '']
    x, mask = name_text_features(names, cache_dir=str(tmp_path), encode=fake_encoder(calls))
    assert x.shape == (3, 8) and mask.tolist() == [True, True, False]
    assert float(x[2].abs().sum()) == 0 and calls == [['Lake Bled', 'Libreville']]
    again, _ = name_text_features(names, cache_dir=str(tmp_path), encode=fake_encoder(calls))
    assert torch.equal(again, x) and len(calls) == 1  # reused, not encoded again
    name_text_features(names, model='other-model', cache_dir=str(tmp_path),
                       encode=fake_encoder(calls))
    assert len(calls) == 2  # another model: its own cache


def test_mmkg_dataset_adds_the_text_modality(tiny_raw, monkeypatch):
    calls = []
    monkeypatch.setattr(text, 'encode_texts', fake_encoder(calls))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = MMKGDataset(str(tiny_raw.parent), text_features='names', log=False)
        plain = MMKGDataset(str(tiny_raw.parent), log=False)
    assert ds.modalities == ['text'] and plain.modalities == []
    assert ds[0]['text'].x.shape == (6, 8) and bool(ds[0]['text'].mask.all())
    torch.save(torch.randn(6, 3), tiny_raw / 'tiny-textual.pth')
    with pytest.raises(ValueError, match='already provides the text modality'):
        MMKGDataset(str(tiny_raw.parent), text_features='names', log=False)


def test_wildkgc_text_from_names_rules(tmp_path):
    with pytest.raises(ValueError, match='MKG-W names its entities by Wikidata ids only'):
        WildKGC(str(tmp_path), 'MKG-W', text_features='names')
    with pytest.raises(ValueError, match="text_features must be None or 'names'"):
        MMKGDataset(str(tmp_path), text_features='descriptions')


@needs_shared
def test_wildkgc_mkgy_names_through_the_cli(tmp_path, monkeypatch, capsys):
    from native_pyg.cli import main
    calls = []
    monkeypatch.setattr(text, 'encode_texts', fake_encoder(calls))
    fill_wildkgc_root(tmp_path, 'MKG-Y')
    assert main(['stats', '--dataset', 'MKG-Y', '--root', str(tmp_path),
                 '--text-features', 'names']) == 0
    out = capsys.readouterr().out
    assert 'text' in out and '15,000' in out
    assert 'Gilles Mbang Ondo' in calls[0]  # YAGO underscores read as spaces
    assert main(['stats', '--dataset', 'synthetic', '--text-features', 'names']) == 2


def test_the_default_model_encodes_offline():
    pytest.importorskip('sentence_transformers', reason='the text extra is not installed '
                                                        "(pip install -e '.[text]')")
    x = text.encode_texts(['Paris', 'Paris, France', 'banana bread'], progress=False)
    assert x.shape == (3, 384)
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(x[0], x[1], dim=0)) > float(cos(x[0], x[2], dim=0))


def test_the_encoder_bar_is_shown_on_a_terminal_only(monkeypatch):
    import io
    from native_pyg.features import text
    seen = []

    class Encoder:
        def encode(self, texts, show_progress_bar, **kwargs):
            seen.append(show_progress_bar)
            return torch.zeros(len(texts), 3)

    monkeypatch.setattr(text, 'load_text_encoder', lambda model, device: Encoder())
    monkeypatch.setattr(sys, 'stderr', io.StringIO())  # a log file, not a terminal
    text.encode_texts(['a'], progress=True)
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, 'stderr', terminal)
    text.encode_texts(['a'], progress=True)
    text.encode_texts(['a'], progress=False)
    assert seen == [False, True, False]  # no '\r' redraws written into logs


def test_loading_the_encoder_writes_no_bar_into_a_log(monkeypatch, capfd):
    """transformers draws a weight-loading bar of its own; into a log file
    (stderr not a terminal) nothing of it is written, and the global switch
    is left as found."""
    pytest.importorskip('sentence_transformers', reason='the text extra is not installed '
                                                        "(pip install -e '.[text]')")
    from transformers.utils import logging as hf_logging
    from native_pyg.features import text
    assert hf_logging.is_progress_bar_enabled()
    text.load_text_encoder(text.DEFAULT_TEXT_MODEL, None)
    assert 'Loading weights' not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
