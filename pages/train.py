"""Train: start runs in the background (separate processes) and watch them live."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import streamlit as st

from cmkt.train import accel
from cmkt.runs import torchrun
from cmkt.data.source import parse_sim_spec
from cmkt.errors import CmktError
from cmkt.runs.jobs import cancel_run, list_runs, run_info, start_run
from cmkt.baselines import BASELINE_PRESETS
from cmkt.train.presets import PRESET_HELP, PRESETS
from cmkt.runs import ACTIVE, read_config, read_metrics
from dashboard.charts import epoch_table, training_curves
from dashboard.state import (DATA_TYPES, check_data_file, fmt, runs_dir, save_upload,
                             shared_data_folders, uploaded_data_files)

st.title("Train")
st.caption("Each run is its own background process writing to its run folder: leaving this page, "
           "reloading the browser or restarting the dashboard loses nothing.")


class _Refused(Exception):
    """The chosen data was refused and its message is already on the page."""


def parse_overrides(text: str) -> dict:
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise CmktError(f"override line {n} ({line!r}): expected KEY=VALUE, e.g. lr=0.001")
        out[key.strip()] = value.strip()
    return out


def take_upload(up) -> str | None:
    """Check and keep an uploaded data file as soon as it arrives (once per upload) and say what
    was read, with the reader's notes (rows sorted, rows dropped), or the one reason it was
    refused. Returns the kept file's path, None when it was refused (nothing is kept then)."""
    done = st.session_state.get("_tr_upload")
    if not done or done.get("file_id") != up.file_id:
        done = {"file_id": up.file_id}
        try:
            with st.spinner(f"Reading {up.name} ..."):
                got = {}
                path = save_upload(up, "data", check=lambda p: got.update(ds=check_data_file(p)))
                ds = got["ds"] if "ds" in got else check_data_file(path)     # the same file was kept before
            done.update(path=str(path.resolve()), notes=list(ds.notes),
                        summary=(f"{up.name}: {len(ds):,} students, {ds.n_interactions:,} interactions, "
                                 f"{ds.num_skills:,} skills. Kept as "
                                 f"{path.name} under the runs folder's uploads."))
        except CmktError as e:
            done["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - a message, never a traceback
            done["error"] = f"{up.name}: could not be read ({type(e).__name__}: {e})"
        st.session_state["_tr_upload"] = done
    if "error" in done:
        st.error(done["error"])
        return None
    st.success(done["summary"], icon=":material/check_circle:")
    if done["notes"]:
        st.info("Note: " + "; ".join(done["notes"]) + ".", icon=":material/info:")
    return done["path"]


# ---- the form ---------------------------------------------------------------------------

with st.container(border=True):
    st.subheader("New run")
    c1, c2 = st.columns(2, gap="large")
    with c1:
        source = st.radio("Data", ["sim", "upload", "path"], horizontal=True, key="tr_source",
                          format_func={"sim": "Simulated students", "upload": "Upload a file",
                                       "path": "File or folder path"}.get)
        upload = upload_path = None
        path_choice = None
        if source == "sim":
            s1, s2 = st.columns(2)
            students = s1.number_input("Students", 2, 100_000, 300, step=50, key="tr_sim_students")
            skills = s2.number_input("Skills", 1, 500, 12, key="tr_sim_skills")
            st.caption("Seeded simulated students whose true mastery is known (cohorts: train / test).")
        elif source == "upload":
            upload = st.file_uploader("A data file: three-line CSV, pyKT sequence CSV or a long "
                                      "interaction log", type=list(DATA_TYPES), key="tr_upload")
            if upload is not None:
                upload_path = take_upload(upload)
            before = uploaded_data_files()
            if before and upload is None:
                path_choice = st.selectbox("…or a file uploaded before", [None, *map(str, before)],
                                           format_func=lambda p: "—" if p is None else Path(p).name,
                                           key="tr_prev_upload")
        else:
            folders = [str(p) for p in shared_data_folders()]
            pick = st.selectbox("Data folder", [*folders, "other"], key="tr_folder",
                                format_func=lambda p: "Another path…" if p == "other" else f"{Path(p).name} ({p})")
            if pick == "other":
                path_choice = st.text_input("Path to a data file, or a folder with train.csv / test.csv",
                                            key="tr_path").strip()
            else:
                path_choice = pick
        mode = st.radio("Model", ["cumulative", "original", "both", "dkt", "bkt", "pfa"], horizontal=True,
                        key="tr_mode",
                        format_func={"cumulative": "cumulative", "original": "original",
                                     "both": "both, as a pair for comparison", "dkt": "DKT (LSTM)",
                                     "bkt": "BKT", "pfa": "PFA"}.get)
        if mode in BASELINE_PRESETS:
            st.caption({"dkt": "DKT: an LSTM over the same tokens; its mastery is its per-skill output.",
                        "bkt": "BKT: Bayesian Knowledge Tracing per skill, fitted by EM in one go (epochs "
                               "and sizes do not apply).",
                        "pfa": "PFA: logistic regression on per-skill success and failure counts, fitted "
                               "in one go (epochs and sizes do not apply)."}[mode])
    with c2:
        p1, p2 = st.columns(2)
        preset = p1.selectbox("Preset", list(PRESETS), key="tr_preset")
        own = BASELINE_PRESETS.get(mode, {}).get(preset, {})
        epochs = p2.number_input("Epochs", 1, 1000, int(own.get("epochs", PRESETS[preset]["epochs"])),
                                 key=f"tr_epochs_{preset}" + (f"_{mode}" if mode in BASELINE_PRESETS else ""))
        st.caption(PRESET_HELP.get(preset, ""))
        p3, p4 = st.columns(2)
        seed = p3.number_input("Seed", 0, 2**31 - 1, 0, key="tr_seed")
        device = p4.selectbox("Device", ["auto", "cpu", "cuda"], key="tr_device")
        gainakt2 = mode not in BASELINE_PRESETS          # predictor settings are GainAKT2's
        on = "cpu" if device == "cpu" or not torchrun.gpu_count() else "cuda"
        width = PRESETS[preset]["d_model"] if gainakt2 else None
        st.caption(f"{torchrun.device_plan(device)} The `{preset}` model trains "
                   f"{accel.precision_plan(on, width)} (`amp=auto`; put `amp=off` or `amp=bf16` in the overrides "
                   "to choose).")
        p5, p6 = st.columns(2)
        predictor = p5.selectbox("Predictor", ["mastery", "mlp"], key="tr_predictor", disabled=not gainakt2,
                                 help="mastery: P(correct) = mastery + difficulty + a momentary part from the "
                                      "recent answers, so every prediction is explained by mastery; mlp: the "
                                      "first release's predictor (mastery is a side output)")
        bound = p6.selectbox("momentary_bound", ["unbounded", "0", "0.5", "1", "2", "4"], key="tr_bound",
                             disabled=predictor != "mastery" or not gainakt2,
                             help="the most (in logit units) the recent answers may add to mastery + "
                                  "difficulty: 0 makes the prediction a function of mastery alone")
        overrides_text = st.text_area("Overrides (one KEY=VALUE per line)", key="tr_overrides", height=90,
                                      placeholder="lr=0.001\nd_model=96\nloss_weights=enhanced")
        name = st.text_input("Run name (optional)", key="tr_name",
                             placeholder="default: time-data-model-preset").strip()
    start = st.button("Start training", type="primary", icon=":material/play_arrow:", key="tr_start")

if start:
    try:
        overrides = parse_overrides(overrides_text)
        if gainakt2 and predictor == "mlp":
            overrides.setdefault("predictor", "mlp")
        elif gainakt2:
            overrides.setdefault("momentary_bound", "inf" if bound == "unbounded" else bound)
        if source == "sim":
            spec = "sim" if (students, skills) == (300, 12) else f"sim:students={students},skills={skills}"
            parse_sim_spec(spec)
        elif source == "upload":
            if upload is not None:
                spec = upload_path      # None when refused: its error is already shown above
                if spec is None:
                    st.toast("The uploaded file was refused: see the message under it.")
            elif path_choice:
                spec = path_choice
            else:
                raise CmktError("choose a data file to upload first")
        else:
            if not path_choice:
                raise CmktError("type the path of a data file or folder")
            p = Path(path_choice).expanduser()
            if not p.exists():
                raise CmktError(f"{path_choice}: no such file or folder")
            if p.is_dir() and not (p / "train.csv").exists():
                raise CmktError(f"{path_choice}: a data folder needs a train.csv")
            spec = str(p.resolve())
        if spec is None:
            raise _Refused
        modes = ["original", "cumulative"] if mode == "both" else [mode]
        if len(modes) > 1 and "num_threads" not in overrides and (os.cpu_count() or 1) > 1:
            overrides["num_threads"] = str(max(1, (os.cpu_count() or 2) // 2))  # share the cores
        pair = f"pair-{dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}" if mode == "both" else None
        started = []
        for m in modes:
            run_name = (f"{name}-{m}" if mode == "both" else name) if name else None
            started.append(start_run(runs_dir(), data=spec, mode=m, preset=preset, epochs=int(epochs),
                                     overrides=overrides, seed=int(seed), device=device, name=run_name,
                                     pair_id=pair))
        st.session_state["tr_watch"] = started[0].name
        st.session_state["_tr_started"] = "Started " + ", ".join(p.name for p in started) + "."
        st.rerun()
    except _Refused:
        pass
    except (CmktError, ValueError) as e:
        st.error(str(e))

if st.session_state.get("_tr_started"):
    st.success(st.session_state.pop("_tr_started"))


# ---- live view --------------------------------------------------------------------------

def progress_of(info) -> tuple[float, str]:
    st_ = info.status
    total = info.epochs or 1
    done = int(st_.get("epoch") or 0)
    frac = done / total
    text = f"{info.state}: epoch {done}/{total}"
    if info.state == "running" and (st_.get("current_epoch") or 0) > done and st_.get("n_batches"):
        frac = (done + st_.get("batch", 0) / st_["n_batches"]) / total
        text = (f"running: epoch {st_['current_epoch']}/{total}, batch {st_.get('batch')}/{st_['n_batches']}, "
                f"loss {fmt(st_.get('train_loss'))}")
    if info.state == "finished":
        frac, text = 1.0, f"finished: {done} epoch(s)" + (f", best val AUC {fmt(info.best_val_auc)}"
                                                          if info.best_val_auc is not None else "")
    return max(0.0, min(1.0, frac)), text


infos = list_runs(runs_dir())
active_at_start = sorted(i.name for i in infos if i.state in ACTIVE)


@st.fragment(run_every=2.0 if active_at_start else None)
def live_view():
    infos = list_runs(runs_dir())
    active = sorted(i.name for i in infos if i.state in ACTIVE)
    if active != active_at_start:
        st.rerun(scope="app")            # a run started or ended: refresh the whole page
    st.subheader("Runs in progress" if active else "No run in progress")
    for i in infos:
        if i.state not in ACTIVE:
            continue
        a, b = st.columns([5, 1], vertical_alignment="bottom")
        frac, text = progress_of(i)
        a.progress(frac, text=f"**{i.name}** ({i.mode}, {i.data}) — {text}")
        if b.button("Cancel", key=f"cancel_{i.name}", icon=":material/stop_circle:"):
            cancel_run(i.path, wait=0)
            st.toast(f"Cancel requested for {i.name}")
    if not infos:
        st.caption("Nothing trained yet: start a run above.")
        return
    names = [i.name for i in infos]
    if st.session_state.get("tr_watch") not in names:
        st.session_state["tr_watch"] = names[0]
    watch = st.selectbox("Watch run", names, key="tr_watch")
    info = run_info(runs_dir() / watch)
    frac, text = progress_of(info)
    st.progress(frac, text=f"**{info.name}** — {text}")
    if info.state == "failed":
        st.error(f"This run failed: {info.error}")
    elif info.state == "cancelled":
        st.warning("This run was cancelled.")
    hist = read_metrics(info.path)
    if not hist:
        st.caption("Waiting for the first epoch to finish …")
        return
    last = hist[-1]
    cols = st.columns(6)
    for col, (k, lab) in zip(cols, [("val_auc", "val AUC"), ("monotonicity_violation_rate", "monotonicity viol."),
                                    ("negative_gain_rate", "negative gains"), ("bounds_violation_rate", "out of bounds"),
                                    ("students_with_violation", "students w/ violation"),
                                    ("mastery_performance_corr", "mastery–perf. r")]):
        col.metric(lab, fmt(last.get(k)), help=f"epoch {last.get('epoch')}, validation split")
    st.plotly_chart(training_curves({info.name: hist}), key="tr_curves")
    st.markdown("**Per epoch** (validation split)")
    table = epoch_table(hist)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.4f") for c in table.columns
        if c not in ("epoch", "phase", "seconds", "lr")})
    try:
        cfg = read_config(info.path)
        st.caption(f"data {cfg.get('train', {}).get('data')} · preset {info.preset} · mode {info.mode}"
                   + (f" · pair {info.pair}" if info.pair else "")
                   + (f" · trained on {info.status['device']}" if info.status.get("device") else "")
                   + (f" in {info.status['precision']}" if info.status.get("precision") else ""))
    except CmktError:
        pass


live_view()
if not active_at_start:
    st.button("Refresh", key="tr_refresh", icon=":material/refresh:")
