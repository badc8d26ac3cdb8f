import os

import pytest
import torch

from native_pyg.training.best_weights import BestWeights
from native_pyg.training.checkpoint import load_checkpoint


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


def _checkpoint(model, epoch):
    return lambda: {'model': model.state_dict(), 'weights_epoch': epoch}


def test_in_memory_copies_into_the_kept_tensors():
    model, best = _model(0), BestWeights()
    best.keep(model, 1)
    kept = {k: v.data_ptr() for k, v in best.state.items()}
    first = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    best.keep(model, 2)
    assert {k: v.data_ptr() for k, v in best.state.items()} == kept  # no new copy
    assert torch.equal(best.state['weight'], first['weight'] + 1.0)
    with torch.no_grad():
        model.weight.zero_()
    best.load_into(model)
    assert torch.equal(model.weight, first['weight'] + 1.0)
    assert best.state_dict() is best.state


def test_a_folder_keeps_only_the_file(tmp_path):
    model, best = _model(0), BestWeights(str(tmp_path))
    best.keep(model, 3)
    assert best.state is None and not (tmp_path / 'best.pt').exists()  # written on commit
    best.commit(_checkpoint(model, 3))
    assert load_checkpoint(str(tmp_path / 'best.pt'))['weights_epoch'] == 3
    assert best.state_dict() == {'epoch_in_folder': 3}  # what last.pt records: no tensors
    want = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.zero_()
    best.load_into(model)
    assert torch.equal(model.weight, want)
    # model.pt written from them supersedes best.pt
    torch.save({'model': model.state_dict(), 'weights_epoch': 3}, tmp_path / 'model.pt')
    os.remove(tmp_path / 'best.pt')
    best.superseded('model.pt')
    with torch.no_grad():
        model.weight.zero_()
    best.load_into(model)
    assert torch.equal(model.weight, want)


def test_a_kill_between_last_and_best_is_mended_on_resume(tmp_path):
    model = _model(0)
    best = BestWeights(str(tmp_path))
    best.keep(model, 5)  # ... last.pt of epoch 5 written, then killed before commit()
    recorded = best.state_dict()
    again = BestWeights(str(tmp_path))
    again.load_state_dict(recorded, best_epoch=5)
    with pytest.raises(ValueError, match='neither best.pt nor model.pt holds .* epoch \\(5\\)'):
        again.load_into(_model(1))
    # the resumed last.pt's own weights are the best epoch's: written now
    again.resumed(model, 5, _checkpoint(model, 5))
    assert load_checkpoint(str(tmp_path / 'best.pt'))['weights_epoch'] == 5
    other = _model(1)
    again.load_into(other)
    assert torch.equal(other.weight, model.weight)


def test_tensors_of_an_older_last_pt_are_kept_in_memory(tmp_path):
    model = _model(0)
    best = BestWeights(str(tmp_path))
    best.load_state_dict({k: v.clone() for k, v in model.state_dict().items()}, best_epoch=2)
    assert best.in_memory and best.epoch == 2
    other = _model(1)
    best.load_into(other)
    assert torch.equal(other.weight, model.weight)
    with pytest.raises(ValueError, match='run folder'):
        BestWeights().load_state_dict({'epoch_in_folder': 1}, best_epoch=1)


def test_weights_are_loaded_from_a_mapped_file_in_blocks(tmp_path, monkeypatch):
    import native_pyg.training.checkpoint as ck
    monkeypatch.setattr(ck, 'BLOCK_BYTES', 8192)  # [4096, 8] floats: 16 blocks of 2 pages
    table = torch.nn.Embedding(4096, 8)
    torch.save({'model': table.state_dict()}, tmp_path / 'w.pt')
    want = table.weight.detach().clone()
    other = torch.nn.Embedding(4096, 8)
    ptr = other.weight.data_ptr()
    state = ck.load_weights_into(other, str(tmp_path / 'w.pt'))
    assert torch.equal(other.weight, want) and other.weight.data_ptr() == ptr  # in place
    # the file's pages were let go, never its contents: read again, they are the same
    assert torch.equal(state['model']['weight'], want)
