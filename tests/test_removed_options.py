"""Options removed in 0.2 (docs/MODEL.md, "Options"): a saved config that names one still loads
where the old value rebuilds the same model or the same training, and is refused in one line
otherwise."""
import json

import pytest
import torch
from safetensors.torch import save_file

from cmkt.errors import CheckpointError, RunError
from cmkt.model import GainAKT2, ModelConfig
from cmkt.runs import create_run, execute_run
from cmkt.runs.checkpoint import FORMAT, load_checkpoint
from cmkt.train.config import TrainConfig, build_configs
from cmkt.train.kinds import config_to_dict


def _checkpoint(path, cfg: dict, model) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": FORMAT, "model_config": json.dumps(cfg), "meta": "{}"})


def test_a_detached_gain_encoder_loads_as_the_value_stream_and_predicts_the_same(tmp_path):
    torch.manual_seed(0)
    model = GainAKT2(ModelConfig(num_skills=5, d_model=16, n_heads=2, d_ff=16, max_len=12,
                                 predictor="mastery", base="prior")).eval()
    _checkpoint(tmp_path / "old.safetensors", {**config_to_dict(model.cfg), "gain_encoder": "detached"}, model)
    loaded, _ = load_checkpoint(tmp_path / "old.safetensors")
    s, r = torch.randint(0, 5, (2, 10)), torch.randint(0, 2, (2, 10))
    assert loaded.cfg.gain_encoder == "value"
    with torch.no_grad():
        assert torch.equal(loaded(s, r).mastery, model(s, r).mastery)


def test_a_both_gain_encoder_is_refused_in_one_line_naming_the_option(tmp_path):
    model = GainAKT2(ModelConfig(num_skills=5, d_model=16, n_heads=2, d_ff=16, max_len=12))
    _checkpoint(tmp_path / "both.safetensors", {**config_to_dict(model.cfg), "gain_encoder": "both"}, model)
    with pytest.raises(CheckpointError, match="both.safetensors.*gain_encoder 'both' was removed") as e:
        load_checkpoint(tmp_path / "both.safetensors")
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="gain_encoder"):
        ModelConfig(num_skills=5, gain_encoder="detached")        # not for new models


@pytest.mark.parametrize("key, same, other", [("mastery_hinge", "level", "gap"), ("mastery_lr_scale", 1.0, 3.0)])
def test_removed_training_options_load_at_their_old_default_and_refuse_any_other_value(key, same, other):
    base = TrainConfig().to_dict()
    assert TrainConfig.from_dict({**base, key: same}) == TrainConfig()
    with pytest.raises(ValueError, match=f"{key}.*removed"):
        TrainConfig.from_dict({**base, key: other})
    with pytest.raises(ValueError, match="unknown setting"):
        build_configs(5, "cumulative", "quick", {key: str(other)})


def test_the_removed_sparse_loss_set_loads_as_its_six_weights():
    cfg = TrainConfig.from_dict({**TrainConfig().to_dict(), "loss_weights": "sparse"})
    assert cfg.weights() == (0.1, 0.1, 0.3, 0.3, 0.3, 0.1)
    with pytest.raises(ValueError, match="loss_weights"):
        TrainConfig(loss_weights="sparse")


def test_an_old_run_folder_with_a_removed_value_is_refused_when_resumed(tmp_path):
    run = create_run(tmp_path, data="sim:students=20,skills=3", epochs=1, check_data=False,
                     overrides={"d_model": "8", "n_heads": "2", "d_ff": "8"})
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["mastery_hinge"] = "gap"
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="mastery_hinge='gap' was removed"):
        execute_run(run)
    assert json.loads((run / "status.json").read_text())["state"] == "failed"
