"""atomic_file: a file is written whole or not at all."""
import os

import pytest

from native_pyg.data.atomic_files import atomic_file


def test_a_file_appears_whole_and_replaces_the_old_one(tmp_path):
    path = tmp_path / 'sub' / 'out.txt'  # the directory is created
    with atomic_file(str(path), 'w') as f:
        f.write('first')
        assert not path.exists()  # nothing at the path while writing
    with atomic_file(str(path), 'wb', sync=True) as f:
        f.write(b'second')
    assert path.read_text() == 'second' and os.listdir(path.parent) == ['out.txt']


@pytest.mark.parametrize('error', [OSError, KeyboardInterrupt])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / 'out.txt'
    path.write_text('old')
    with pytest.raises(error):
        with atomic_file(str(path), 'w') as f:
            f.write('half of the new')
            raise error('disk full')
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['out.txt']


def test_without_replace_an_existing_file_is_kept(tmp_path):
    path = tmp_path / 'out.txt'
    with atomic_file(str(path), 'w', replace=False) as f:
        f.write('first')
    with pytest.raises(FileExistsError):
        with atomic_file(str(path), 'w', replace=False) as f:
            f.write('second')
    assert path.read_text() == 'first' and os.listdir(tmp_path) == ['out.txt']
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_file(str(path), 'a'):
            pass


def test_a_directory_is_moved_in_whole_or_not_at_all(tmp_path):
    from native_pyg.data.atomic_files import atomic_directory
    target = tmp_path / 'store'
    target.mkdir()  # empty
    with pytest.raises(RuntimeError, match='killed'):
        with atomic_directory(str(target)) as tmp:
            open(os.path.join(tmp, 'part'), 'w').close()
            raise RuntimeError('killed')
    assert os.listdir(tmp_path) == ['store'] and os.listdir(target) == []  # no temporary left
    with atomic_directory(str(target)) as tmp:  # an empty directory is replaced
        open(os.path.join(tmp, 'part'), 'w').close()
    assert os.listdir(target) == ['part'] and os.listdir(tmp_path) == ['store']
    with pytest.raises(OSError):  # a directory with files is never replaced
        with atomic_directory(str(target)) as tmp:
            open(os.path.join(tmp, 'other'), 'w').close()
    assert os.listdir(target) == ['part'] and os.listdir(tmp_path) == ['store']
