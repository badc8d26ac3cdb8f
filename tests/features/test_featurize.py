"""native_pyg/features/featurize.py: a modality's rows from a row source,
committed a chunk at a time, resumable after a kill, written in the disk
feature store's own format."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from native_pyg.data.feature_store import DiskFeatureStore
from native_pyg.features.featurize import RowChunk, featurize


class Squares:
    """Rows ``[i, i**2 / 100, 1]`` for even ids; odd ids have no input; a
    multiple of 7 has two inputs pooled, and ids 5 and 9 an unreadable one."""
    dim = 3

    def __init__(self, scale=1.0, fail_at=None):
        self.scale, self.fail_at, self.asked = scale, fail_at, []

    def settings(self):
        return {'scale': self.scale}

    def rows(self, entities):
        self.asked.append(entities.copy())
        if self.fail_at is not None and self.fail_at in entities:
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of the run
        e = entities.astype(np.float32)
        rows = np.stack([e, e ** 2 / 100, np.ones_like(e)], 1) * self.scale
        mask = entities % 2 == 0
        counts = np.where(mask, np.where(entities % 7 == 0, 2, 1), 0)
        bad = int(np.isin(entities, [5, 9]).sum())
        return RowChunk(rows, mask, counts, {'unreadable': bad})


def _files(out, modality='x'):
    return {ext: open(os.path.join(out, modality + ext), 'rb').read()
            for ext in ('.npy', '.mask.npy', '.count.npy')}


def test_rows_masks_counts_and_the_record(tmp_path):
    report = featurize(Squares(), 50, str(tmp_path), 'x', chunk_rows=8, progress=False)
    rows = np.load(tmp_path / 'x.npy')
    mask = np.load(tmp_path / 'x.mask.npy')
    counts = np.load(tmp_path / 'x.count.npy')
    assert rows.dtype == np.float16 and rows.shape == (50, 3)
    ids = np.arange(50)
    assert (mask == (ids % 2 == 0)).all()
    assert np.allclose(rows[mask], np.stack([ids, ids ** 2 / 100, np.ones(50)], 1)[mask],
                       rtol=1e-3)
    assert (rows[~mask] == 0).all()  # no input: a zero row, masked
    assert counts[14] == 2 and counts[2] == 1 and counts[3] == 0
    assert (report.present, report.pooled, report.skipped) == (25, 25 + 4, {'unreadable': 2})
    assert 'x: 25 of 50 entities have rows, 29 inputs pooled; skipped: 2 unreadable' \
        == report.line()
    record = json.load(open(tmp_path / 'x.json'))
    assert record['settings'] == {'scale': 1.0} and record['present'] == 25
    assert not (tmp_path / '.featurize-x').exists()  # the work folder goes once done
    # the same files are a modality of a disk store
    store_dir = tmp_path / 'store'
    store_dir.mkdir()
    for ext in ('.npy', '.mask.npy'):
        os.link(tmp_path / f'x{ext}', store_dir / f'x{ext}')
    (store_dir / 'features.json').write_text(json.dumps(
        {'num_entities': 50, 'modalities': {'x': {'dim': 3, 'dtype': 'float16'}}}))
    store = DiskFeatureStore(str(store_dir))
    assert np.array_equal(store.stored_rows('x').numpy(), rows)


def test_limit_encodes_the_first_entities_and_masks_the_rest(tmp_path):
    source = Squares()
    report = featurize(source, 50, str(tmp_path), 'x', chunk_rows=8, limit=10, progress=False)
    assert max(int(a.max()) for a in source.asked) == 9  # never asked past the limit
    mask = np.load(tmp_path / 'x.mask.npy')
    assert mask[:10].sum() == 5 and not mask[10:].any()
    assert np.load(tmp_path / 'x.npy').shape == (50, 3)
    assert '(--limit: the first 10 of 50 encoded)' in report.line()


def test_an_interrupted_run_resumes_and_writes_the_same_files(tmp_path):
    whole = tmp_path / 'whole'
    featurize(Squares(), 50, str(whole), 'x', chunk_rows=8, progress=False)
    cut = tmp_path / 'cut'
    with pytest.raises(KeyboardInterrupt):
        featurize(Squares(fail_at=30), 50, str(cut), 'x', chunk_rows=8, progress=False)
    committed = sorted(os.listdir(cut / '.featurize-x'))
    assert committed == ['chunk-000000.npz', 'chunk-000001.npz', 'chunk-000002.npz', 'job.json']
    assert not (cut / 'x.npy').exists()
    source = Squares()
    report = featurize(source, 50, str(cut), 'x', chunk_rows=8, progress=False)
    assert [int(a[0]) for a in source.asked] == [24, 32, 40, 48]  # the kept chunks not again
    assert report.resumed == 3 and report.chunks == 7
    assert _files(cut) == _files(whole)


def test_other_settings_start_over(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        featurize(Squares(fail_at=30), 50, str(tmp_path), 'x', chunk_rows=8, progress=False)
    source = Squares(scale=2.0)
    with pytest.warns(UserWarning, match='other settings; starting over'):
        report = featurize(source, 50, str(tmp_path), 'x', chunk_rows=8, progress=False)
    assert report.resumed == 0 and len(source.asked) == 7
    assert np.load(tmp_path / 'x.npy')[2, 0] == 4.0


def test_a_killed_process_resumes_to_the_same_files(tmp_path):
    """A real SIGKILL mid-run (the process kills itself on its fourth
    chunk), then a rerun in a new process."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        import numpy as np
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_featurize import Squares
        from native_pyg.features.featurize import featurize

        class Killed(Squares):
            def rows(self, entities):
                if sys.argv[2] == 'kill' and 24 in entities:
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().rows(entities)

        featurize(Killed(), 50, sys.argv[1], 'x', chunk_rows=8, progress=False)
    """)
    path = tmp_path / 'run.py'
    path.write_text(script)
    out = str(tmp_path / 'out')
    killed = subprocess.run([sys.executable, str(path), out, 'kill'])
    assert killed.returncode == -9
    assert len([f for f in os.listdir(os.path.join(out, '.featurize-x'))
                if f.endswith('.npz')]) == 3
    assert subprocess.run([sys.executable, str(path), out, 'go']).returncode == 0
    whole = str(tmp_path / 'whole')
    featurize(Squares(), 50, whole, 'x', chunk_rows=8, progress=False)
    assert _files(out) == _files(whole)


def test_nothing_is_overwritten(tmp_path):
    featurize(Squares(), 20, str(tmp_path), 'x', progress=False)
    with pytest.raises(ValueError, match='x.json: the x features are written already'):
        featurize(Squares(), 20, str(tmp_path), 'x', progress=False)
    featurize(Squares(scale=3.0), 20, str(tmp_path), 'x', overwrite=True, progress=False)
    assert np.load(tmp_path / 'x.npy')[2, 0] == 6.0
    np.save(tmp_path / 'y.npy', np.ones((20, 3)))  # a user's own file
    with pytest.raises(ValueError, match='y.npy: exists and was not written by featurize'):
        featurize(Squares(), 20, str(tmp_path), 'y', progress=False)
    assert np.load(tmp_path / 'y.npy').sum() == 60


def test_a_source_that_breaks_its_promise_is_one_line(tmp_path):
    class NaNs(Squares):
        def rows(self, entities):
            chunk = super().rows(entities)
            chunk.rows[1, 0] = np.nan
            return chunk
    with pytest.raises(ValueError, match='the row of entity 1 is not finite'):
        featurize(NaNs(), 20, str(tmp_path), 'x', progress=False)

    class Short(Squares):
        def rows(self, entities):
            chunk = super().rows(entities)
            return chunk._replace(rows=chunk.rows[:, :2])
    with pytest.raises(ValueError, match=r'the source gave rows \[20, 2\]'):
        featurize(Short(), 20, str(tmp_path), 'z', progress=False)
