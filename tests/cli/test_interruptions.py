"""Issue 24: Ctrl-C, a full disk, a killed --overwrite, names in another
Unicode form: never a lost run, never a traceback (the one-line errors of
bad arguments and paths, '~' included, are in test_cli.py)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from native_pyg.prediction import resolve
from native_pyg.training.runs import REPLACED, prepare_run_dir, replacing_run

REPO = Path(__file__).resolve().parents[2]
FAST = ['--set', 'model.hidden_channels=8', '--set', 'training.batch_size=4096',
        '--set', 'training.num_negatives=4', '--set', 'training.eval_every=1',
        '--set', 'training.progress=false']


def _cli(*argv, **kwargs):
    return subprocess.Popen([sys.executable, '-m', 'native_pyg.cli', *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(REPO), **kwargs)


@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_is_one_line_naming_last_pt_and_the_resume_command(tmp_path, sig, code):
    # SIGTERM (a scheduler's or kill's) says the same (issue 39)
    out = tmp_path / 'run'
    # SIGINT as a terminal sends it, even where these tests run as a background job
    # (which starts with SIGINT ignored, and Python then keeps it so)
    proc = _cli('train', '--out', out, *FAST, '--epochs', '500',
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (out / 'last.pt').exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (out / 'last.pt').exists(), proc.communicate()[1]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never left training 500 epochs beside the other tests
    assert proc.returncode == code
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert str(out / 'last.pt') in lines[0] and '--resume' in lines[0]
    assert not list(out.glob('.ckpt-*')) and not list(out.glob('.write-*'))  # nothing half-written
    torch.load(out / 'last.pt', weights_only=True)  # a complete checkpoint


@pytest.mark.parametrize('sig,code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_command_still_loads_is_one_line(tmp_path, sig, code):
    proc = _cli('train', '--out', tmp_path / 'run', *FAST, '--epochs', '5',
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # once main() runs (it catches SIGTERM: its SigCgt bit), while the command's modules
        # and torch still load; a fixed sleep raced with a slow start on a busy machine
        bit = 1 << (int(signal.SIGTERM) - 1)
        deadline = time.time() + 60
        while time.time() < deadline:
            status = Path(f'/proc/{proc.pid}/status').read_text()
            caught = int(next(l for l in status.splitlines() if l.startswith('SigCgt:'))
                         .split()[1], 16)
            if caught & bit:
                break
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('native-pyg: interrupted'), err


def _run_files(out):
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != '.lock'}


def test_a_killed_overwrite_leaves_the_previous_run_to_be_restored(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    for name in ('last.pt', 'model.pt', 'metrics.json'):
        (out / name).write_text(f'old {name}')
    old = _run_files(out)
    # the new run fails before its first checkpoint: the old one is put back
    with pytest.raises(RuntimeError):
        with replacing_run(str(out), overwrite=True):
            assert not (out / 'model.pt').exists() and (out / REPLACED).is_dir()
            (out / 'history.jsonl').write_text('new, unfinished')
            raise RuntimeError('failed before a checkpoint')
    assert _run_files(out) == old and not (out / REPLACED).exists()
    # a process killed while the old run is aside: the next start restores it
    (out / REPLACED).mkdir()
    for name in old:
        os.replace(out / name, out / REPLACED / name)
    (out / 'history.jsonl').write_text('new, unfinished')
    prepare_run_dir(str(out), overwrite=True)
    assert _run_files(out) == old
    # once the new run has a checkpoint, the old one is dropped
    with replacing_run(str(out), overwrite=True):
        (out / 'last.pt').write_text('new last.pt')
    assert _run_files(out) == {'last.pt': b'new last.pt'} and not (out / REPLACED).exists()


def test_evaluate_points_to_a_run_an_interrupted_overwrite_set_aside(tmp_path, capsys):
    # issue 39: it said "checkpoint not found"
    from native_pyg.cli import main
    out = tmp_path / 'run'
    (out / REPLACED).mkdir(parents=True)
    (out / REPLACED / 'model.pt').write_text('the previous run')
    assert main(['evaluate', '--checkpoint', str(out / 'model.pt')]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and 'interrupted --overwrite set the previous run aside' in err[0]
    assert (out / REPLACED / 'model.pt').read_text() == 'the previous run'


def _mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"a full disk needs a small tmpfs, and mount failed here: "
                    f"{proc.stderr.strip() or proc.returncode}")


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(tmp_path):
    disk = tmp_path / 'disk'
    _mount_tmpfs(disk, '4m')
    try:
        out = disk / 'run'
        first = _cli('train', '--out', out, *FAST, '--epochs', '1')
        assert first.wait(timeout=300) == 0, first.communicate()[1]
        last = (out / 'last.pt').read_bytes()
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / 'filler').write_bytes(b'\0' * max(free - 4096, 0))  # the disk is now full
        again = _cli('train', '--out', out, '--resume', *FAST, '--epochs', '3')
        _, err = again.communicate(timeout=300)
        assert again.returncode == 2
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and 'no space left on device' in lines[0], err
        assert (out / 'last.pt').read_bytes() == last  # the previous checkpoint survives
    finally:
        subprocess.run(['umount', str(disk)], capture_output=True)


def test_convert_features_on_a_full_disk_names_the_path_and_leaves_nothing(tmp_path):
    import numpy as np
    disk = tmp_path / 'disk'
    _mount_tmpfs(disk, '1m')
    try:
        np.save(tmp_path / 'image.npy', np.ones((4000, 100), np.float32))  # 1.6 MB
        proc = _cli('convert-features', f'image={tmp_path / "image.npy"}', '--out',
                    disk / 'store', '--dtype', 'float32', '--quiet')
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and 'no space left on device' in lines[0], err
        assert str(disk) in lines[0]  # the path, not the cause alone
        assert os.listdir(disk) == []  # no half store, no temporary left behind
    finally:
        subprocess.run(['umount', str(disk)], capture_output=True)


def test_tune_on_a_full_disk_is_one_line(tmp_path):
    pytest.importorskip('optuna', reason='native-pyg tune needs Optuna (the test extra)')
    disk = tmp_path / 'disk'
    _mount_tmpfs(disk, '1m')
    try:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / 'filler').write_bytes(b'\0' * max(free - 4096, 0))  # the disk is now full
        proc = _cli('tune', '--out', disk / 'study', '--trials', '1', '--threads', '1',
                    '--quiet', *FAST, '--set', 'training.epochs=1')
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and str(disk / 'study') in lines[0], err
        assert 'Traceback' not in err
    finally:
        subprocess.run(['umount', str(disk)], capture_output=True)


def test_names_match_in_any_unicode_normal_form_and_suggest_case_insensitively():
    names = ['FC_J\u016brmala', 'Riga', 'Tartu']  # NFC: u with macron as one code point
    nfd = 'FC_Ju\u0304rmala'
    assert nfd != names[0] and resolve('entity', nfd, names) == 0
    with pytest.raises(ValueError, match="did you mean 'Riga'"):
        resolve('entity', 'RIGAA', names)


def test_a_read_only_file_system_is_one_line_for_the_run_and_the_dataset_cache(tmp_path):
    ro = tmp_path / 'ro'
    _mount_tmpfs(ro, '1m')
    try:
        import shutil
        shutil.copytree(REPO / 'examples' / 'my_mmkg', ro / 'kg',
                        ignore=shutil.ignore_patterns('processed'))
        remount = subprocess.run(['mount', '-o', 'remount,ro', str(ro)], capture_output=True)
        if remount.returncode:
            pytest.skip('remounting the tmpfs read-only failed here')
        for argv, where in ((['train', '--out', ro / 'run', *FAST, '--epochs', '1'], ro / 'run'),
                            (['stats', '--dataset', ro / 'kg'], ro / 'kg')):
            proc = _cli(*argv)
            _, err = proc.communicate(timeout=120)
            lines = [l for l in err.splitlines() if l.strip()]
            assert proc.returncode == 2 and len(lines) == 1, err
            assert str(where) in lines[0] and 'read-only file system' in lines[0], err
    finally:
        subprocess.run(['umount', str(ro)], capture_output=True)
