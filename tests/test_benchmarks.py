"""Smoke test: each benchmark script runs end to end on tiny settings and writes its tables."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(name, *args, timeout=120, check=True):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def test_results_quick(tmp_path):
    run_script("results.py", "--quick", "--out", tmp_path)
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {r["mode"]: r for r in res["rows"]}
    assert set(rows) == {"original", "cumulative", "dkt", "bkt", "pfa"}     # every model kind
    assert all(r["status"] == "ok" for r in rows.values())
    for kind in ("dkt", "bkt", "pfa"):                                       # the baselines wobble or fall
        assert 0 <= rows[kind]["test_auc"] <= 1 and rows[kind]["mastery_auc"] is not None
    cum = rows["cumulative"]
    for key in ("monotonicity_violation_rate", "negative_gain_rate", "bounds_violation_rate",
                "students_with_violation"):
        assert cum[key] == 0, key                       # guaranteed by construction
    assert cum["mastery_recovery_corr"] is not None     # sim has the true mastery
    assert 0 <= cum["test_auc"] <= 1 and cum["n_params"] > 0
    assert res["machine"]["cpu"] and res["command"].startswith("python benchmarks/results.py")
    md = (tmp_path / "results.md").read_text()
    assert "| sim | **cumulative** |" in md
    assert (tmp_path / "results.csv").read_text().startswith("dataset,mode,preset,test_auc")


def test_speed_quick(tmp_path):
    run_script("speed.py", "--quick", "--out", tmp_path)
    res = json.loads((tmp_path / "speed.json").read_text())
    variants = {r["variant"]: r for r in res["train"]}
    assert {"reference", "cmkt"} <= set(variants)
    ref, ours = variants["reference"], variants["cmkt"]
    assert ref["interactions"] == ours["interactions"] > 0          # same work for both
    assert ref["padded_slots"] > ours["padded_slots"]               # the reference pads to 200
    assert ref["loop_vs_closed_form_max_diff"] < 1e-4               # the loop is the same model
    assert ours["flops_per_epoch"] > 0 and res["matmul"]["peak_flops"] > 0
    assert res["score"]["best_total_seconds"] > 0 and res["score"]["students"] > 0
    assert res["profile"]["phases"] and res["profile"]["top_ops"]
    assert "interactions/s" in (tmp_path / "speed.md").read_text()


def test_tradeoff_quick(tmp_path):
    run_script("tradeoff.py", "--quick", "--bounds", "0,inf", "--out", tmp_path, timeout=240)
    res = json.loads((tmp_path / "tradeoff.json").read_text())
    points = res["data"]["sim"]["points"]
    assert [p["bound"] for p in points] == [0.0, None]
    for p in points:
        assert 0 <= p["auc"] <= 1 and 0 <= p["mastery_auc"] <= 1
        assert p["students_with_violation"] == 0
    # at bound 0 the prediction is mastery + difficulty: it ranks much like mastery alone
    assert points[0]["corr_ratio"] is not None
    again = run_script("tradeoff.py", "--report", tmp_path / "tradeoff.json")
    assert "| momentary_bound | AUC | mastery AUC |" in again.stdout and "unbounded" in again.stdout


def test_speed_reference_keeps_the_first_release_dropout():
    """Every variant trains the first release's model; only `cmkt` takes the preset's dropout
    choices (fused attention, fast masks), so the speed-up of those is counted as cmkt's."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import speed
    from cmkt.train.config import build_configs
    for preset in ("quick", "standard"):
        cfgs = {v: build_configs(20, "cumulative", preset, speed.variant_overrides(v, {}))[0]
                for v in speed.VARIANTS}
        assert {c.predictor for c in cfgs.values()} == {"mlp"} and {c.recurrent for c in cfgs.values()} == {0}
        assert cfgs["cmkt"].dropout_kernel == "fast" and cfgs["cmkt"].attention_dropout == 0
        for name in ("reference", "pad200 + closed form", "length-bucketed + loop"):
            assert cfgs[name].dropout_kernel == "torch"
            assert cfgs[name].attention_dropout == cfgs[name].dropout > 0
        # the command line's --set still reaches every variant
        assert speed.variant_overrides("reference", {"d_model": "32"})["d_model"] == "32"


def test_precision_quick(tmp_path):
    """benchmarks/precision.py times the real trainer in float32 and both bfloat16 variants and
    says what amp=auto picks."""
    run_script("precision.py", "--quick", "--out", tmp_path)
    res = json.loads((tmp_path / "precision.json").read_text())
    settings = [r["setting"] for r in res["rows"]]
    assert settings == ["float32", "bfloat16, attention float32", "bfloat16, attention bfloat16"]
    assert [r["precision"] for r in res["rows"]] == ["float32", "bfloat16 autocast", "bfloat16 autocast"]
    assert all(r["best_seconds"] > 0 and r["matmul_ms"] > 0 for r in res["rows"])
    assert res["auto"] == {"quick": "float32"}               # 16 wide: under the bfloat16 width
    assert "| precision | epoch s (best) |" in (tmp_path / "precision.md").read_text()


def test_results_merge_replaces_a_rerun(tmp_path):
    """--report A --merge B: B's rows replace A's rows of the same data set and model."""
    run_script("results.py", "--quick", "--modes", "cumulative,pfa", "--out", tmp_path / "a")
    run_script("results.py", "--quick", "--modes", "cumulative", "--seed", "1", "--out", tmp_path / "b")
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    proc = run_script("results.py", "--report", tmp_path / "a" / "results.json",
                      "--merge", tmp_path / "b" / "results.json")
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| sim |")]
    cum = [line for line in rows if "**cumulative**" in line]
    assert len(cum) == 1                                    # one cumulative row, not two
    new_auc = f"{b['rows'][0]['test_auc']:.4f}"
    assert new_auc in cum[0]                                # the rerun's figure
    assert any("| pfa |" in line for line in rows)          # the rows not rerun are kept
    assert a["rows"][0]["mode"] == "cumulative"


def test_results_seeds_give_a_spread_table(tmp_path):
    """--seeds 0,1: the first seed fills the main table, and the spread table gives the mean, the
    standard deviation and the range of both; --report A --seeds-from B does the same from two runs."""
    import statistics
    run_script("results.py", "--quick", "--modes", "cumulative", "--seeds", "0,1", "--out", tmp_path / "s",
               timeout=240)
    res = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [r["seed"] for r in res["rows"]] == [0] and [r["seed"] for r in res["seed_rows"]] == [1]
    aucs = [res["rows"][0]["test_auc"], res["seed_rows"][0]["test_auc"]]
    assert aucs[0] != aucs[1]                                # two different runs
    md = (tmp_path / "s" / "results.md").read_text()
    spread = [line for line in md.splitlines() if line.startswith("| sim | cumulative | 0, 1 |")]
    assert len(spread) == 1
    want = (f"{statistics.fmean(aucs):.4f} ± {statistics.stdev(aucs):.4f} "
            f"({min(aucs):.4f}–{max(aucs):.4f})")
    assert want in spread[0]
    assert len([line for line in md.splitlines() if line.startswith("| sim | **cumulative** |")]) == 1
    assert (tmp_path / "s" / "results.csv").read_text().count("\nsim,cumulative,") == 2

    # the same from two separate runs; a setting that differs (another d_model) is not pooled
    run_script("results.py", "--quick", "--modes", "cumulative", "--seed", "1", "--out", tmp_path / "b")
    run_script("results.py", "--quick", "--modes", "cumulative", "--seed", "2", "--set", "d_model=8",
               "--set", "n_heads=1", "--out", tmp_path / "c")
    a_only = tmp_path / "a.json"
    a_only.write_text(json.dumps({**res, "seed_rows": []}))
    proc = run_script("results.py", "--report", a_only, "--seeds-from", tmp_path / "b" / "results.json",
                      "--seeds-from", tmp_path / "c" / "results.json")
    spread = [line for line in proc.stdout.splitlines() if line.startswith("| sim | cumulative | 0, ")]
    assert len(spread) == 1 and spread[0].startswith("| sim | cumulative | 0, 1 |")   # seed 2 differs
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert b["rows"][0]["test_auc"] == aucs[1]              # the same seed trains the same model
    assert want in spread[0]

    # rows keep their saved configuration: one trained under another default (same --set values)
    # is not pooled, nor is a row from before rows kept it (no config, no run folder), unless the
    # main row has none either: then their --set values are compared
    b_row = b["rows"][0]
    assert b_row["config"]["model"]["d_model"] == res["rows"][0]["config"]["model"]["d_model"]
    assert "seed" not in b_row["config"]["train"]
    changed = {**b_row, "config": {**b_row["config"], "model": {**b_row["config"]["model"], "gain_encoder": "value"}}}
    if b_row["config"]["model"]["gain_encoder"] == "value":
        changed["config"]["model"]["gain_encoder"] = "recurrent"
    older = {k: v for k, v in b_row.items() if k != "config"} | {"run": str(tmp_path / "gone")}
    main_older = tmp_path / "a_older.json"
    main_older.write_text(json.dumps({**res, "seed_rows": [], "rows": [
        {k: v for k, v in res["rows"][0].items() if k != "config"} | {"run": str(tmp_path / "gone0")}]}))
    for main, row, pooled in ((a_only, changed, False), (a_only, older, False), (main_older, older, True)):
        other = tmp_path / "other.json"
        other.write_text(json.dumps({**b, "rows": [row]}))
        proc = run_script("results.py", "--report", main, "--seeds-from", other)
        spread = [line for line in proc.stdout.splitlines() if line.startswith("| sim | cumulative | 0, ")]
        assert (len(spread) == 1) is pooled
    proc = run_script("results.py", "--quick", "--seeds", "1,1", "--out", tmp_path / "x", check=False)
    assert proc.returncode != 0 and "--seeds" in proc.stderr


def test_results_update_docs_keeps_the_rows_to_merge_into_later(tmp_path):
    """--update-docs rewrites the marked section of RESULTS.md and keeps the rows behind it in
    results.json beside it; a later run of one model is merged into that record without
    training the others again, and the record follows."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "RESULTS.md").write_text("# Results\n\n<!-- results:begin -->\nstale table\n<!-- results:end -->\ntail\n")
    run_script("results.py", "--quick", "--modes", "cumulative,pfa", "--out", tmp_path / "a",
               "--update-docs", "--docs-dir", docs)
    text = (docs / "RESULTS.md").read_text()
    assert "stale table" not in text and "| sim | pfa |" in text and text.endswith("<!-- results:end -->\ntail\n")
    kept = json.loads((docs / "results.json").read_text())
    assert {r["mode"] for r in kept["rows"]} == {"cumulative", "pfa"}
    run_script("results.py", "--quick", "--modes", "cumulative", "--seed", "1", "--out", tmp_path / "b")
    rerun = json.loads((tmp_path / "b" / "results.json").read_text())["rows"][0]
    run_script("results.py", "--report", docs / "results.json", "--merge", tmp_path / "b" / "results.json",
               "--update-docs", "--docs-dir", docs)
    kept = json.loads((docs / "results.json").read_text())
    assert [(r["mode"], r["seed"]) for r in kept["rows"]] == [("cumulative", 1), ("pfa", 0)]
    assert f"{rerun['test_auc']:.4f}" in (docs / "RESULTS.md").read_text()
    assert kept["merged"][0]["command"] == json.loads((tmp_path / "b" / "results.json").read_text())["command"]


def test_refit_probe_trains_a_second_model_on_every_training_student(tmp_path):
    proc = run_script("refit.py", "--dataset", "sim", "--mode", "cumulative", "--set", "epochs=2",
                      "--set", "d_model=16", "--set", "n_heads=2", "--set", "d_ff=32", "--set", "recurrent=8",
                      "--set", "gain_hidden=8", "--set", "members=1", "--out", tmp_path / "refit.json")
    out = json.loads((tmp_path / "refit.json").read_text())
    assert json.loads(proc.stdout) == out
    n_train, n_all = out["train_students"]
    assert n_all > n_train and 1 <= out["best_epoch"] <= 2 and len(out["lrs"]) == out["best_epoch"]
    assert out["selected"]["auc"] != out["refit"]["auc"]                      # two different models
    assert out["refit"]["monotonicity_violation_rate"] == 0
    assert out["overrides"]["mastery_epochs"] == "0"                          # the main phase only
    assert out["overrides"]["stack"] == "none"
    proc = run_script("refit.py", "--dataset", "sim", "--mode", "cumulative", "--set", "mastery_epochs=2",
                      check=False)
    assert proc.returncode != 0 and "mastery_epochs" in proc.stderr


def test_sweep_runs_every_variant_and_seed_into_one_table(tmp_path):
    variants = tmp_path / "variants.txt"
    variants.write_text("# two settings\nbase:\nnarrow: d_model=8 d_ff=16   # narrower\n")
    run_script("sweep.py", "--variants", variants, "--datasets", "sim", "--seeds", "0,1", "--jobs", "2",
               "--quick", "--device", "cpu", "--out", tmp_path / "out", timeout=300)
    res = json.loads((tmp_path / "out" / "sweep.json").read_text())
    got = {(r["variant"], r["seed"]) for r in res["rows"]}
    assert got == {("base", 0), ("base", 1), ("narrow", 0), ("narrow", 1)}
    for r in res["rows"]:
        assert r["dataset"] == "sim" and r["mode"] == "cumulative" and r["status"] == "ok"
        assert (r["config"]["model"]["d_model"] == 8) == (r["variant"] == "narrow")
        assert r["monotonicity_violation_rate"] == 0.0
    table = (tmp_path / "out" / "sweep.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| base") or line.startswith("| narrow")]
    assert len(rows) == 2 and all("| sim |" in line and "| 0,1 |" in line for line in rows)
    assert res["unfinished"] == [] and res["not_started"] == []


def test_sweep_refuses_a_malformed_variants_file_and_stops_at_the_deadline(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("base:\nwide d_model=256\n")
    proc = run_script("sweep.py", "--variants", bad, "--out", tmp_path / "o", check=False)
    assert proc.returncode != 0 and f"{bad}:2" in proc.stderr and "name: key=value" in proc.stderr
    bad.write_text("base: d_model\n")
    proc = run_script("sweep.py", "--variants", bad, "--out", tmp_path / "o", check=False)
    assert proc.returncode != 0 and "key=value" in proc.stderr
    ok = tmp_path / "ok.txt"
    ok.write_text("base:\n")
    proc = run_script("sweep.py", "--variants", ok, "--datasets", "sim", "--seeds", "0,1", "--device", "cpu",
                      "--deadline", "0", "--out", tmp_path / "late", check=False)
    res = json.loads((tmp_path / "late" / "sweep.json").read_text())
    assert proc.returncode == 1 and res["rows"] == [] and res["not_started"] == ["base-sim-s0", "base-sim-s1"]


def test_average_runs_scores_the_mean_of_trained_runs(tmp_path):
    from cmkt.runs import create_run, execute_run
    tiny = {"d_model": "8", "n_heads": "2", "d_ff": "16", "max_len": "20", "gain_hidden": "4", "recurrent": "4"}
    runs = []
    for width in ("8", "12"):        # the same simulated students (one seed), two different models
        run = create_run(tmp_path, data="sim:students=40,skills=4", mode="cumulative", preset="quick", epochs=1,
                         seed=0, overrides=dict(tiny, d_model=width), name=f"w{width}")
        execute_run(run)
        runs.append(run)
    proc = run_script("average_runs.py", "--data", "sim:students=40,skills=4", *runs)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(res["runs"]) == 2 and res["runs"][0]["auc"] != res["runs"][1]["auc"]
    avg = res["average"]
    assert avg["monotonicity_violation_rate"] == 0 and avg["bounds_violation_rate"] == 0
    assert 0.3 < avg["auc"] < 1
    other = create_run(tmp_path, data="sim:students=40,skills=5", mode="cumulative", preset="quick", epochs=1,
                       overrides=tiny, name="other")
    execute_run(other)
    proc = run_script("average_runs.py", "--data", "sim:students=40,skills=4", runs[0], other, check=False)
    assert proc.returncode != 0
