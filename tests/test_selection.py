"""Model selection (TrainConfig.select_on): validation AUC alone, or AUC plus mastery AUC."""
import json

import pytest

from cmkt.train.config import build_configs
from cmkt.runs import create_run, execute_run
from cmkt.train.trainer import Trainer, selection_score

TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "patience": "10"}


def test_selection_score():
    rec = {"val_auc": 0.7, "mastery_auc": 0.6, "val_loss": 0.5}
    assert selection_score(rec) == 0.7
    assert selection_score(rec, "auc+mastery_auc") == pytest.approx(1.3)
    assert selection_score({"val_auc": 0.7, "mastery_auc": None}, "auc+mastery_auc") == 0.7
    assert selection_score({"val_auc": None, "val_loss": 0.5}, "auc+mastery_auc") == -0.5


@pytest.mark.parametrize("select_on, best", [("auc", 1), ("auc+mastery_auc", 2)])
def test_the_best_epoch_follows_select_on(tmp_path, monkeypatch, select_on, best):
    """Epoch 1 predicts a little better, epoch 2's mastery ranks the answers much better."""
    scores = iter([(0.80, 0.60), (0.79, 0.70), (0.5, 0.5)])    # two epochs, then the test split
    real_eval = Trainer.evaluate

    def fake_eval(self, model, ds):
        out = real_eval(self, model, ds)
        out["auc"], out["mastery_auc"] = next(scores)
        return out
    monkeypatch.setattr(Trainer, "evaluate", fake_eval)
    run = create_run(tmp_path, data="sim:students=40,skills=4", preset="quick", epochs=2,
                     overrides=dict(TINY, select_on=select_on))
    results = execute_run(run)
    assert results["best_epoch"] == best
    assert json.loads((run / "status.json").read_text())["best_epoch"] == best


def test_select_on_is_checked():
    with pytest.raises(ValueError, match="select_on must be one of"):
        build_configs(5, "cumulative", "quick", {"select_on": "loss"})
