"""The defaults of runs saved by older versions (native_pyg/config/legacy.py)."""
from native_pyg.config.legacy import LEGACY_DEFAULTS, with_legacy_defaults
from native_pyg.config.run_config import DataConfig, ModelConfig, RunConfig, TrainConfig

SECTIONS = {'model': ModelConfig, 'training': TrainConfig, 'data': DataConfig}


def test_the_legacy_defaults_are_declared_keys_with_allowed_values():
    for section, keys in LEGACY_DEFAULTS.items():
        defaults = SECTIONS[section]()
        for name, value in keys.items():
            assert type(value) is type(getattr(defaults, name)), f'{section}.{name}'
    old = RunConfig.from_dict(with_legacy_defaults({'dataset': 'synthetic'}))
    assert old == RunConfig()  # no section saved: nothing to fill in
    saved = {'data': {}, 'model': {'structure_mask': True}, 'training': {'lr': 0.01}}
    filled = with_legacy_defaults(saved)
    assert saved == {'data': {}, 'model': {'structure_mask': True}, 'training': {'lr': 0.01}}
    run = RunConfig.from_dict(filled)  # every legacy value passes its key's rule
    assert run.data.feature_store == 'memory' and run.training.cpu_blas == 'torch'
    assert run.model.structure_mask and not run.model.structure_stand_in
    assert run.training.lr == 0.01 and filled['training']['precision'] == 'fp32'
