import json

from native_pyg.cli import main
from tests.conftest import fill_wildkgc_root, needs_shared


def test_stats_synthetic_writes_plot_and_json(tmp_path, capsys):
    png, js = tmp_path / 'cov.png', tmp_path / 'rep.json'
    assert main(['stats', '--dataset', 'synthetic', '--plot', str(png), '--json', str(js)]) == 0
    out = capsys.readouterr().out
    assert 'MMKG report: synthetic' in out and 'image' in out
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    rep = json.loads(js.read_text())
    assert rep['num_entities'] == 2000


@needs_shared
def test_stats_real_dataset(tmp_path, capsys):
    fill_wildkgc_root(tmp_path, 'MKG-Y')
    assert main(['stats', '--dataset', 'MKG-Y', '--root', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert '15,000' in out and '21,310' in out
