"""`cmkt import`: reference-system checkpoints (the pyKT fork's GainAKT2) as the reference really
saves them, loaded weights-only into runs of kind gainakt2-ref that score exactly as the published
forward pass, under pyKT's protocol."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmkt.analysis.metrics import compute_metrics
from cmkt.cli import main
from cmkt.runs.checkpoint import load_checkpoint
from cmkt.runs.evaluate import score_checkpoint
from reference_fixtures import (SMALL, published_state, write_format_a, write_format_b, write_hostile,
                                write_pykt_data)

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out.strip(), err


def refused(rc, err, *needles):
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for n in needles:
        assert n in err, err


def nothing_written(out: Path):
    assert not out.exists() or not [p for p in out.iterdir()], list(out.iterdir())


def import_ok(capsys, path, out, *extra) -> Path:
    rc, printed, err = run_cli(capsys, "import", path, "--out", out, *extra)
    assert rc == 0, err
    run = Path(printed.splitlines()[-1])
    assert run.parent == Path(out).resolve() and run.is_dir()
    return run


@pytest.fixture
def formats(tmp_path):
    """A format-A folder, a format-B folder and their weights."""
    sa, sb = published_state(1), published_state(2)
    a = write_format_a(tmp_path / "saved_model" / "assist2015_gainakt2_qid_saved_model_42_0", sa)
    b = write_format_b(tmp_path / "saved_model" / "gainakt2_cumulative_mastery_v1", sb)
    return {"A": (a, sa), "B": (b, sb)}


# ---- loading both formats ------------------------------------------------------------------

def test_both_formats_import_into_finished_runs(capsys, tmp_path, formats):
    out = tmp_path / "runs"
    run_a = import_ok(capsys, formats["A"][0], out)
    run_b = import_ok(capsys, formats["B"][0], out)
    run_file = import_ok(capsys, formats["A"][0] / "qid_model.ckpt", out, "--name", "from-file")
    assert run_file.name == "from-file"
    for run, fmt, variant in ((run_a, "A", "original"), (run_b, "B", "cumulative"), (run_file, "A", "original")):
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["model"]["kind"] == "gainakt2-ref" and cfg["model"]["variant"] == variant
        assert cfg["model"]["num_skills"] == SMALL["num_c"] and cfg["model"]["n_heads"] == SMALL["n_heads"]
        assert cfg["imported"]["format"] == fmt and cfg["imported"]["source"].endswith((".ckpt", ".pth"))
        assert json.loads((run / "status.json").read_text())["state"] == "finished"
        model, meta = load_checkpoint(run)
        assert meta["kind"] == "gainakt2-ref"
    # format B keeps what the reference recorded: its numpy float64 metrics as plain numbers
    res = json.loads((run_b / "results.json").read_text())
    assert res["valid"]["val_auc"] == pytest.approx(0.72)
    assert res["reference"]["consistency_metrics"]["mastery_correlation"] == pytest.approx(0.31)
    hist = [json.loads(x) for x in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert [h["val_auc"] for h in hist] == pytest.approx([0.69, 0.72])
    assert (run_a / "metrics.jsonl").read_text() == ""
    assert not (out / ".importing").exists()
    # the weights are the checkpoint's, key by key
    model, _ = load_checkpoint(run_b)
    sd = model.state_dict()
    for k, v in formats["B"][1].items():
        assert torch.equal(sd[k], v), k


def test_variant_override_and_module_prefix(capsys, tmp_path):
    state = {f"module.{k}": v for k, v in published_state(3).items()}     # saved from DataParallel
    folder = write_format_b(tmp_path / "dp", state, name="model.pth")
    run = import_ok(capsys, folder / "model.pth", tmp_path / "runs", "--variant", "original")
    assert json.loads((run / "config.json").read_text())["model"]["variant"] == "original"
    rc, out, err = run_cli(capsys, "validate", run, "--data", "sim", "--json")
    assert rc == 0, err
    assert json.loads(out)["variant"] == "original"


@pytest.mark.parametrize("fmt", ["A", "B"])
def test_renamed_key_is_refused_by_name(capsys, tmp_path, fmt):
    state = published_state(4)
    state["encoder_blocks.1.attn.k_proj.weight"] = state.pop("encoder_blocks.1.attn.key_proj.weight")
    write = write_format_a if fmt == "A" else write_format_b
    folder = write(tmp_path / "m", state)
    rc, _, err = run_cli(capsys, "import", folder, "--out", tmp_path / "runs")
    refused(rc, err, "encoder_blocks.1.attn.key_proj.weight")
    nothing_written(tmp_path / "runs")


def test_wrong_shape_and_missing_head_are_refused(capsys, tmp_path):
    state = published_state(5)
    state["prediction_head.0.weight"] = state["prediction_head.0.weight"][:, :-1]
    rc, _, err = run_cli(capsys, "import", write_format_b(tmp_path / "shape", state), "--out", tmp_path / "runs")
    refused(rc, err, "prediction_head.0.weight")
    state = published_state(5)
    del state["mastery_head.weight"], state["mastery_head.bias"]       # trained with use_mastery_head=0
    rc, _, err = run_cli(capsys, "import", write_format_a(tmp_path / "nohead", state), "--out", tmp_path / "runs")
    refused(rc, err, "mastery_head.weight", "use_mastery_head")
    nothing_written(tmp_path / "runs")


def test_n_heads_must_come_from_the_config(capsys, tmp_path):
    folder = write_format_a(tmp_path / "a", published_state(6))
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["model_config"]["n_heads"], cfg["params"]["n_heads"]
    (folder / "config.json").write_text(json.dumps(cfg))
    rc, _, err = run_cli(capsys, "import", folder, "--out", tmp_path / "runs")
    refused(rc, err, "n_heads", "config.json")
    (folder / "config.json").unlink()
    rc, _, err = run_cli(capsys, "import", folder / "qid_model.ckpt", "--out", tmp_path / "runs")
    refused(rc, err, "config.json")
    nothing_written(tmp_path / "runs")


@pytest.mark.parametrize("name", ["qid_model.ckpt", "best_model.pth", "model.pth"])
def test_hostile_pickle_is_refused_and_never_runs(capsys, tmp_path, name):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "evil"
    write_hostile(folder / name, marker)
    if name.endswith(".ckpt"):
        write_format_a(tmp_path / "cfg", published_state(0))
        (folder / "config.json").write_text((tmp_path / "cfg" / "config.json").read_text())
    for target in (folder, folder / name):
        rc, _, err = run_cli(capsys, "import", target, "--out", tmp_path / "runs")
        refused(rc, err, name, "nothing in it was run")
        assert "system" in err
    assert not marker.exists()
    nothing_written(tmp_path / "runs")


def test_training_it_is_refused(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "train", "--model", "gainakt2-ref", "--out", tmp_path / "runs")
    refused(rc, err, "gainakt2-ref", "cmkt import")
    nothing_written(tmp_path / "runs")


# ---- equality with the published forward pass ----------------------------------------------

def hand_forward(sd: dict, cfg: dict, c, r, qry, variant: str):
    """The reference forward pass written out with plain torch ops from the state dict, with the
    cumulative recursion as the reference's own loop. c, r, qry: (B, L)."""
    C, d, H = cfg["num_c"], cfg["d_model"], cfg["n_heads"]
    dk = d // H
    B, L = c.shape
    tok = c + C * r
    pos = sd["pos_embedding.weight"][:L]
    ctx = sd["context_embedding.weight"][tok] + pos
    val = sd["value_embedding.weight"][tok] + pos
    mask = torch.triu(torch.ones(L, L), diagonal=1).bool()

    def lin(x, name):
        return x @ sd[name + ".weight"].T + sd[name + ".bias"]

    def norm(x, name):
        return F.layer_norm(x, (d,), sd[name + ".weight"], sd[name + ".bias"])

    for i in range(cfg["num_encoder_blocks"]):
        p = f"encoder_blocks.{i}."
        Q = lin(ctx, p + "attn.query_proj").view(B, L, H, dk).transpose(1, 2)
        K = lin(ctx, p + "attn.key_proj").view(B, L, H, dk).transpose(1, 2)
        V = lin(val, p + "attn.value_proj").view(B, L, H, dk).transpose(1, 2)
        w = torch.softmax((Q @ K.transpose(-2, -1) / math.sqrt(dk)).masked_fill(mask, -1e9), dim=-1)
        a = lin((w @ V).transpose(1, 2).reshape(B, L, d), p + "attn.output_proj")
        val = norm(val + a, p + "norm1_val")
        x = norm(ctx + a, p + "norm1_ctx")
        ctx = norm(x + lin(torch.relu(lin(x, p + "ffn.0")), p + "ffn.3"), p + "norm2_ctx")
    h = torch.cat([ctx, val, sd["concept_embedding.weight"][qry]], dim=-1)
    pred = torch.sigmoid(lin(torch.relu(lin(h, "prediction_head.0")), "prediction_head.3").squeeze(-1))
    if variant == "original":
        return pred, lin(ctx, "mastery_head"), lin(val, "gain_head")
    gains = torch.relu(lin(val, "gain_head"))
    start = torch.sigmoid(lin(ctx, "mastery_head"))
    m = torch.zeros_like(start)
    m[:, 0] = start[:, 0]
    for t in range(1, L):
        m[:, t] = torch.clamp(m[:, t - 1] + gains[:, t] * 0.1, min=0.0, max=1.0)
    return pred, m, gains


def fixed_input(L=SMALL["seq_len"] - 1, B=3, seed=7):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, SMALL["num_c"], (B, L + 1), generator=g)
    r = torch.randint(0, 2, (B, L + 1), generator=g)
    return c[:, :-1], r[:, :-1], c[:, 1:]          # pyKT: model(c, r, cshft)


@pytest.mark.parametrize("variant", ["cumulative", "original"])
def test_predictions_and_mastery_equal_the_reference_forward_pass(capsys, tmp_path, formats, variant):
    folder, state = formats["B"]
    run = import_ok(capsys, folder, tmp_path / "runs", "--variant", variant)
    model, _ = load_checkpoint(run)
    c, r, qry = fixed_input()
    with torch.no_grad():
        out = model(c, r, qry)
        want = hand_forward(state, SMALL, c, r, qry, variant)
    for got, exp in zip((out.predictions, out.mastery, out.gains), want):
        assert got.shape == exp.shape
        assert torch.allclose(got, exp, atol=1e-5, rtol=0), (got - exp).abs().max()
    if variant == "cumulative":
        m, g = out.mastery, out.gains
        assert (m[:, 1:] >= m[:, :-1]).all() and (g >= 0).all()
        assert ((m >= 0) & (m <= 1)).all()
        assert not torch.equal(m[:, 0], m[:, -1])          # it does move


def test_scoring_follows_the_pykt_protocol(capsys, tmp_path, formats):
    """Scored trajectories: prediction for step t from steps < t (pyKT's position t-1), mastery after
    step t; a student longer than seq_len is cut into windows that each start afresh, and the first
    step of every window has no prediction and is left out of the metrics."""
    run = import_ok(capsys, formats["B"][0], tmp_path / "runs")
    data = write_pykt_data(tmp_path / "test_sequences.csv", lengths=(5, 30, 12, 13))
    scored = score_checkpoint(run, str(data))
    traj, ds = scored.traj, scored.data
    L = SMALL["seq_len"]
    for i, sid in enumerate(ds.student_ids):
        s = torch.as_tensor(ds.skills[i])[None]
        r = torch.as_tensor(ds.responses[i])[None]
        sl = traj.rows(i)
        for w0 in range(0, s.shape[1], L):
            cs, rs = s[:, w0:w0 + L], r[:, w0:w0 + L]
            n = cs.shape[1]
            with torch.no_grad():
                pred, m, _ = hand_forward(formats["B"][1], SMALL, cs, rs, torch.cat([cs[:, 1:], cs[:, -1:]], 1),
                                          "cumulative")
            rows = np.arange(sl.start + w0, sl.start + w0 + n)
            assert np.isnan(traj.probs[rows[0]]) and traj.starts[rows[0]]
            assert not traj.starts[rows[1:]].any()
            np.testing.assert_allclose(traj.probs[rows[1:]], pred[0, :n - 1].numpy(), atol=1e-5)
            np.testing.assert_allclose(traj.mastery[rows], m[0].numpy(), atol=1e-5)
    windows = sum(-(-n // L) for n in ds.lengths)
    met = compute_metrics(traj)
    assert met["n_predictions"] == ds.n_interactions - windows
    assert met["n_nonfinite"] == 0 and met["auc"] is not None
    assert met["monotonicity_violation_rate"] == 0.0                # windows restart; within, never falls


def test_concept_ids_are_used_as_they_are(capsys, tmp_path, formats):
    run = import_ok(capsys, formats["A"][0], tmp_path / "runs")
    C = SMALL["num_c"]
    three = tmp_path / "three.csv"                # a three-line file: id 3 is concept 3, not 2
    three.write_text("4\n3,3,6,1\n1,0,1,1\n")
    scored = score_checkpoint(run, str(three))
    assert list(scored.traj.skills) == [3, 3, 6, 1] and scored.traj.num_skills == C
    pykt = write_pykt_data(tmp_path / "p.csv")
    scored = score_checkpoint(run, str(pykt))      # pyKT's 0-based ids: unchanged
    from cmkt.data.readers import read_data
    assert all(np.array_equal(a, b) for a, b in zip(scored.data.skills, read_data(pykt).skills))
    bad = tmp_path / "bad_ids.csv"
    bad.write_text("3\n2,7,1\n1,0,1\n")          # 7 >= num_c
    rc, _, err = run_cli(capsys, "validate", run, "--data", bad)
    refused(rc, err, "bad_ids.csv", "concept id 7", f"num_c = {C}")


# ---- the commands on an imported run (as a user runs them) ------------------------------------

def cli(*args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "cmkt", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_validate_export_compare_report_on_imported_runs(tmp_path, formats):
    out = tmp_path / "runs"
    p = cli("import", formats["B"][0], "--out", out, "--name", "ref-b", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert cli("import", formats["A"][0], "--out", out, "--name", "ref-a", cwd=tmp_path).returncode == 0
    data = write_pykt_data(tmp_path / "test_sequences.csv")
    v = cli("validate", out / "ref-b", "--data", data, "--json", cwd=tmp_path)
    assert v.returncode == 0, v.stderr
    m = json.loads(v.stdout)
    assert m["variant"] == "cumulative" and 0 <= m["auc"] <= 1 and m["n_students"] == 6
    assert m["monotonicity_violation_rate"] == 0 and m["negative_gain_rate"] == 0
    e = cli("export", out / "ref-b", "--data", data, "--all", "--out", tmp_path / "e.csv", cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    import pandas as pd
    df = pd.read_csv(tmp_path / "e.csv")
    assert len(df) == m["n_interactions"] and df["prediction"].isna().sum() == m["n_interactions"] - m["n_predictions"]
    c = cli("compare", out / "ref-a", out / "ref-b", "--data", data, "--json", cwd=tmp_path)
    assert c.returncode == 0, c.stderr
    cols = json.loads(c.stdout)
    assert cols["ref-b"]["auc"] == pytest.approx(m["auc"]) and cols["ref-a"]["variant"] == "original"
    rep = cli("report", out / "ref-b", "--data", data, "--student", "u1", "--out", tmp_path / "u1.html", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "u1.html").stat().st_size > 1000
