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


def test_speed_quick_times_what_ships_against_the_reference(tmp_path):
    run_script("speed.py", "--quick", "--kinds", "cumulative,dkt", "--out", tmp_path, timeout=600)
    res = json.loads((tmp_path / "speed.json").read_text())
    quick = res["epochs"]["quick"]
    assert set(quick) == {"reference", "cumulative", "dkt"}
    for rec in quick.values():
        assert rec["epochs"] and all(e["train_seconds"] > 0 and e["seconds"] >= e["train_seconds"] for e in rec["epochs"])
        assert rec["peak_rss_mb"] > 0
    assert quick["reference"]["interactions"] == quick["cumulative"]["interactions"] > 0     # same students
    assert quick["cumulative"]["flops"] > 0 and res["matmul"]["peak_flops"] > 0
    assert {m: r["returncode"] for m, r in res["command_runs"].items()} == {"reference": 0, "cumulative": 0, "dkt": 0}
    # the reference's command is timed as cmkt's is: a process of its own, start and imports included
    assert res["command_runs"]["reference"]["seconds"] > quick["reference"]["command_seconds"]
    md = (tmp_path / "speed.md").read_text()
    assert "vs reference" in md and "`cmkt train --model cumulative --preset quick --epochs 1`" in md
    assert "reference, a process of its own" in md


def test_speed_builds_each_model_as_cmkt_train_does():
    """The timed model is the preset's (the Trainer that `cmkt train` makes), and the reference is
    the first release's model at the same size."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _common import train_epochs
    from reference_approach import FIRST_RELEASE
    from cmkt.train.config import build_configs
    out = train_epochs("sim:students=30,skills=3", "cumulative", "quick", epochs=1)
    assert out["trainer"].model_cfg == build_configs(3, "cumulative", "quick", seed=0, device="cpu")[0]
    assert len(out["epochs"]) == 1
    ref_cfg = build_configs(3, "cumulative", "quick", FIRST_RELEASE)[0]
    shipped = build_configs(3, "cumulative", "quick")[0]
    assert (ref_cfg.d_model, ref_cfg.n_blocks, ref_cfg.d_ff) == (shipped.d_model, shipped.n_blocks, shipped.d_ff)
    assert ref_cfg.predictor == "mlp" and ref_cfg.max_len == 200 and ref_cfg.dropout_kernel == "torch"


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




def test_the_machine_state_probe_and_the_hosts_steal_share():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _common import cpu_probe_ms, cpu_times, steal_share
    assert 0 < cpu_probe_ms() < 10_000
    t = cpu_times()
    assert t is not None and t["busy"] > 0 and t["idle"] >= 0 and t["steal"] >= 0
    before = {"busy": 100, "idle": 50, "steal": 10}
    after = {"busy": 160, "idle": 70, "steal": 30}          # 100 jiffies passed, 20 of them stolen
    assert steal_share(before, after) == 0.2
    assert steal_share(before, before) is None and steal_share(None, after) is None
