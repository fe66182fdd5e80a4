"""The mastery phase (TrainConfig.mastery_epochs): after the main phase stops, only the parameters
that make mastery alone learn, from the best epoch's weights; the same selection keeps a mastery
epoch only where it beats the best so far; a resume carries the phase."""
import copy
import json

import pytest
import torch

from cmkt.runs.checkpoint import load_checkpoint
from cmkt.train.config import build_configs
from cmkt.data.source import load_training_data
from cmkt.model import GainAKT2
from cmkt.runs import create_run, execute_run
from cmkt.train.trainer import Trainer

TINY = {"d_model": "16", "n_heads": "2", "d_ff": "32", "max_len": "20", "dropout": "0", "gain_hidden": "8",
        "recurrent": "8", "gain_encoder": "recurrent"}   # the accuracy presets' gain LSTM, at the quick size


def _trainer(epochs, mastery_epochs, mode="cumulative", **extra):
    data = load_training_data("sim:students=60,skills=4", 0.2, 0)
    over = dict(TINY, ema="0.8", ema_epochs="0", patience="99", mastery_epochs=str(mastery_epochs), **extra)
    mc, tc = build_configs(data.num_skills, mode, "quick", over, epochs=epochs, device="cpu", seed=3)
    return Trainer(mc, tc, data)


def _is_mastery_only(name: str) -> bool:
    return name.split(".")[0] in GainAKT2.MASTERY_ONLY


def test_the_phase_trains_mastery_alone_from_the_best_weights():
    tr = _trainer(2, 3)
    starts = {}
    real = Trainer._start_mastery_phase

    def spy(self):
        starts["best"] = {k: v.clone() for k, v in self.best_state.items()}
        starts["best_epoch"], starts["score"] = self.best_epoch, self.best_score
        return real(self)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "_start_mastery_phase", spy)
        result = tr.fit()
    phases = [r.get("phase", "main") for r in tr.history]
    assert phases == ["main", "main", "mastery", "mastery", "mastery"]
    assert [r["epoch"] for r in tr.history] == [1, 2, 3, 4, 5]
    assert not result.stopped_early                         # the main phase ran its 2 epochs
    trainable = {n for n, p in tr.model.named_parameters() if p.requires_grad}
    assert trainable and all(_is_mastery_only(n) for n in trainable)
    assert any(n.startswith("gain_rnn") for n in trainable) and "prior" in trainable
    # everything but mastery's own parameters is still the main phase's best (the average's)
    now = tr.eval_model.state_dict()
    frozen = [k for k in now if not _is_mastery_only(k)]
    assert frozen and all(torch.equal(now[k], starts["best"][k]) for k in frozen)
    moved = [k for k in now if _is_mastery_only(k) and not torch.equal(now[k], starts["best"][k])]
    assert moved                                            # mastery did learn
    # a mastery epoch is kept only where it beats the best so far
    assert tr.best_score >= starts["score"]
    best_rec = next(r for r in tr.history if r["epoch"] == tr.best_epoch)
    assert all(r["val_auc"] + r["mastery_auc"] <= best_rec["val_auc"] + best_rec["mastery_auc"] + 1e-12
               for r in tr.history)
    assert all(r["monotonicity_violation_rate"] == 0 and r["bounds_violation_rate"] == 0 for r in tr.history)


def test_after_a_main_phase_selected_on_auc_the_phase_keeps_what_beats_its_auc_plus_mastery_auc():
    """select_on='auc' picks the main phase's best epoch for the prediction; the mastery phase then
    keeps an epoch only where validation AUC + mastery AUC beats that epoch's."""
    tr = _trainer(3, 3, select_on="auc")
    tr.fit()
    main = [r for r in tr.history if r.get("phase") is None]
    phase = [r for r in tr.history if r.get("phase") == "mastery"]
    assert len(main) == 3 and phase
    start = max(main, key=lambda r: r["val_auc"])
    total = (lambda r: r["val_auc"] + r["mastery_auc"])
    best = next(r for r in tr.history if r["epoch"] == tr.best_epoch)
    if best.get("phase") == "mastery":
        assert total(best) > total(start) and total(best) == max(total(r) for r in phase)
    else:
        assert best is start and all(total(r) <= total(start) for r in phase)
    assert tr.best_score == pytest.approx(total(best))


def test_without_the_phase_nothing_changes():
    tr = _trainer(2, 0)
    tr.fit()
    assert [r.get("phase", "main") for r in tr.history] == ["main", "main"]
    assert all(p.requires_grad for p in tr.model.parameters())


def test_the_phase_needs_a_cumulative_model():
    data = load_training_data("sim:students=60,skills=4", 0.2, 0)
    mc, tc = build_configs(data.num_skills, "original", "quick", dict(TINY), epochs=1, device="cpu")
    tc.mastery_epochs = 2
    with pytest.raises(ValueError, match="mastery_epochs"):
        Trainer(mc, tc, data)
    with pytest.raises(ValueError, match="mastery_epochs"):
        build_configs(5, "cumulative", "quick", {"mastery_epochs": "-1"})
    for mode in ("original", "dkt"):                   # refused when the run is created
        with pytest.raises(ValueError, match="mastery_epochs"):
            build_configs(5, mode, "quick", {"mastery_epochs": "2"})


@pytest.mark.parametrize("epoch", [2, 3])
def test_resume_at_or_inside_the_phase_matches_an_uninterrupted_run(epoch):
    """From the state saved after the main phase's last epoch (the phase starts on resume) or
    after the first mastery epoch (the phase goes on, its optimizer state restored)."""
    straight = _trainer(2, 2)
    straight.fit()
    cut = _trainer(2, 2)
    cut.load_state_dict(_state_after(epoch))
    assert cut.phase == ("main" if epoch == 2 else "mastery")
    if epoch == 3:
        assert all(_is_mastery_only(n) for n, p in cut.model.named_parameters() if p.requires_grad)
    cut.fit()
    assert [r["epoch"] for r in cut.history] == [1, 2, 3, 4]
    assert [r["val_auc"] for r in cut.history] == pytest.approx([r["val_auc"] for r in straight.history], abs=1e-6)
    a, b = straight.eval_model.state_dict(), cut.eval_model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


def _state_after(epoch: int) -> dict:
    """The trainer state saved at the end of `epoch` of a (2 + 2)-epoch run."""
    saved = {}
    tr = _trainer(2, 2)
    real = tr.callbacks.on_epoch

    def keep(rec, is_best):
        if rec["epoch"] == epoch:
            saved["state"] = copy.deepcopy(tr.state_dict())   # as written to resume.pt
        return real(rec, is_best)
    tr.callbacks.on_epoch = keep
    tr.fit()
    return saved["state"]


def test_a_run_folder_records_the_phase_and_keeps_the_best(tmp_path):
    run = create_run(tmp_path, data="sim:students=60,skills=4", preset="quick", epochs=2,
                     overrides=dict(TINY, patience="99", mastery_epochs="2"), seed=1)
    results = execute_run(run)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x.get("phase", "main") for x in lines] == ["main", "main", "mastery", "mastery"]
    model, meta = load_checkpoint(run)
    best = next(x for x in lines if x["epoch"] == meta["epoch"])
    assert best["val_auc"] + best["mastery_auc"] == max(x["val_auc"] + x["mastery_auc"] for x in lines)
    assert results["test"]["monotonicity_violation_rate"] == 0
    assert json.loads((run / "config.json").read_text())["train"]["mastery_epochs"] == 2


def test_the_epoch_table_names_the_phase():
    from dashboard.charts import epoch_table
    table = epoch_table([{"epoch": 1, "val_auc": 0.7}, {"epoch": 2, "val_auc": 0.71, "phase": "mastery"}])
    assert list(table["phase"]) == ["main", "mastery"]
    assert "phase" not in epoch_table([{"epoch": 1, "val_auc": 0.7}]).columns


def test_the_command_line_counts_and_marks_the_phase(tmp_path):
    import subprocess
    import sys
    sets = [x for k, v in dict(TINY, patience="99", mastery_epochs="1").items() for x in ("--set", f"{k}={v}")]
    out = subprocess.run([sys.executable, "-m", "cmkt", "train", "--data", "sim:students=60,skills=4",
                          "--model", "cumulative", "--preset", "quick", "--epochs", "1", *sets,
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "epoch 1/2: " in out.stderr and "epoch 2/2 (mastery phase): " in out.stderr
    refused = subprocess.run([sys.executable, "-m", "cmkt", "train", "--data", "sim", "--model", "original",
                              "--set", "mastery_epochs=2", "--out", str(tmp_path)], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode != 0 and "mastery_epochs" in refused.stderr
