"""Runs: every run under the runs folder, the demo runs and uploaded checkpoints."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cmkt.runs.jobs import cancel_run, delete_run
from dashboard.efficiency import efficiency_figure, efficiency_frame
from dashboard.importing import IMPORT_TYPES, VARIANT_CHOICES, import_uploads, variant_of
from dashboard.state import (CHECKPOINT_TYPES, check_checkpoint_file, list_entries, page, runs_dir,
                             save_upload, user_errors)

st.title("Runs")
st.caption("Every training run under the runs folder, the demo pair that ships with cmkt and the "
           "checkpoints you uploaded. Pick one on the Students, Class, Consistency or Compare pages.")

entries = list_entries()


def _when(iso: str | None) -> str | None:
    """An ISO time stamp as 'YYYY-MM-DD HH:MM:SS' (local time of the run)."""
    return iso.replace("T", " ")[:19] if iso else None


def _row(e) -> dict:
    i = e.info
    return {
        "run": e.name, "state": e.state, "mode": e.mode, "variant": variant_of(e), "data": e.data_name,
        "preset": e.preset,
        "epoch": f"{i.epoch}/{i.epochs}" if i is not None and i.epochs else None,
        "best val AUC": i.best_val_auc if i is not None else None,
        "test AUC": i.test_auc if i is not None else None,
        "students with violation": i.violations if i is not None else None,
        "started": _when((i.started or i.created) if i is not None else None),
        "finished": _when(i.finished if i is not None else None),
        "source": e.source, "pair": e.pair,
        "error": i.error if i is not None else None,
    }


if not entries:
    st.info("No runs yet. Start one on the Train page.")
else:
    df = pd.DataFrame([_row(e) for e in entries])
    if df["variant"].isna().all():           # only imported reference models have one
        df = df.drop(columns="variant")
    st.dataframe(
        df, hide_index=True, width="stretch", placeholder="",   # a missing value is a blank, not "None"
        column_config={
            "best val AUC": st.column_config.NumberColumn(format="%.4f"),
            "test AUC": st.column_config.NumberColumn(format="%.4f"),
            "students with violation": st.column_config.NumberColumn(
                format="%.3f", help="share of validation students with at least one mastery drop, "
                "negative gain or out-of-bounds mastery (best epoch)"),
            "error": st.column_config.TextColumn(width="medium"),
        })
    failed = [e for e in entries if e.state == "failed"]
    for e in failed:
        st.error(f"Run {e.name} failed: {e.info.error or 'no error recorded'}")

speed = efficiency_frame(entries)
if len(speed):
    with st.expander("Accuracy per second: test AUC against training time", expanded=False):
        st.caption("Every finished run with a test split: what it reaches (test AUC) and what it cost "
                   "(training seconds, log scale), one panel per data set. Colour: model kind; marker: "
                   "preset. Times are comparable only on one machine under the same load.")
        st.plotly_chart(efficiency_figure(speed), key="efficiency_chart")

c1, c2 = st.columns(2)
with c1:
    st.page_link(page("students"), label="Explore a student's mastery", icon=":material/person:")
    st.page_link(page("consistency"), label="Check consistency against the original model",
                 icon=":material/rule:")
with c2:
    st.page_link(page("train"), label="Train a new model", icon=":material/model_training:")
    st.page_link(page("compare"), label="Compare checkpoints", icon=":material/compare_arrows:")

st.divider()
left, right = st.columns(2, gap="large")

with left:
    st.subheader("Upload a checkpoint")
    st.caption("A cmkt `.safetensors` checkpoint (or a plain-weights `.pt`). It is checked before "
               "it is kept: nothing in it is executed.")
    up = st.file_uploader("Checkpoint file", type=list(CHECKPOINT_TYPES), key="ckpt_upload")
    if up is not None and st.session_state.get("_ckpt_upload_done") != up.file_id:
        st.session_state["_ckpt_upload_done"] = up.file_id
        st.session_state.pop("_ckpt_upload_msg", None)
        try:
            path = save_upload(up, "checkpoints", check=check_checkpoint_file)
            st.session_state["_ckpt_upload_msg"] = ("success", f"Checkpoint {path.name} added: pick "
                                                    f"“upload/{path.name}” on the other pages.")
            st.rerun()
        except Exception as e:  # shown below; CmktError carries the clear message
            from cmkt.errors import CmktError
            msg = str(e) if isinstance(e, CmktError) else f"{up.name}: could not be read ({type(e).__name__}: {e})"
            st.session_state["_ckpt_upload_msg"] = ("error", msg)
    msg = st.session_state.get("_ckpt_upload_msg")
    if msg and up is not None:
        (st.success if msg[0] == "success" else st.error)(msg[1])

with right:
    st.subheader("Delete or cancel a run")
    mine = [e for e in entries if e.deletable]
    if not mine:
        st.caption("Nothing to delete: demo runs are read-only.")
    else:
        by_key = {e.key: e for e in mine}
        key = st.selectbox("Run or uploaded checkpoint", list(by_key), format_func=lambda k: by_key[k].label,
                           key="delete_pick")
        target = by_key[key]
        pending = st.session_state.get("_delete_pending")
        b1, b2 = st.columns(2)
        if target.active:
            if b2.button("Cancel this run", key="cancel_btn", icon=":material/stop_circle:"):
                with user_errors(stop=False):
                    cancel_run(target.path, wait=2)
                    st.toast(f"Cancel requested for {target.name}")
                    st.rerun()
        if b1.button("Delete…", key="delete_btn", icon=":material/delete:"):
            st.session_state["_delete_pending"] = key
            pending = key
        if pending == key:
            what = "its run folder" if target.source == "runs" else "the uploaded file"
            st.warning(f"Delete **{target.name}** and {what}? This cannot be undone.")
            y, n = st.columns(2)
            if y.button("Yes, delete", type="primary", key="delete_yes"):
                st.session_state.pop("_delete_pending", None)
                with user_errors(stop=False):
                    if target.source == "runs":
                        delete_run(runs_dir(), target.name)
                    else:
                        target.path.unlink(missing_ok=True)
                    st.session_state["_deleted_msg"] = f"Deleted {target.name}."
                    st.rerun()
            if n.button("Keep it", key="delete_no"):
                st.session_state.pop("_delete_pending", None)
                st.rerun()
    if st.session_state.get("_deleted_msg"):
        st.success(st.session_state.pop("_deleted_msg"))

st.divider()
st.subheader("Import a reference-system model")
st.caption("A GainAKT2 model trained in the reference system (the pyKT fork): the `best_model.pth` / "
           "`model.pth` of its cumulative scripts, or pyKT's `qid_model.ckpt` together with the "
           "`config.json` beside it. It becomes a run of kind `gainakt2-ref`, scored as pyKT scores it "
           "(concept ids as they are; long students cut into windows that each start afresh). Only "
           "weights and numbers are read: nothing in the files is run. Same as `cmkt import PATH`.")
i1, i2, i3 = st.columns([3, 3, 2])
ref_ckpt = i1.file_uploader("Checkpoint (.pth or .ckpt)", type=list(IMPORT_TYPES), key="ref_upload")
ref_cfg = i2.file_uploader("config.json (needed with a .ckpt)", type=["json"], key="ref_config")
ref_variant = i3.radio("Variant", VARIANT_CHOICES, key="ref_variant",
                       format_func=lambda v: "the format's own (.ckpt: original, .pth: cumulative)"
                       if v == "default" else v,
                       help="cumulative: ReLU gains, mastery accumulated from a sigmoid start "
                            "(GainAKT2Monitored); original: the raw heads")
if st.button("Import", key="ref_import", disabled=ref_ckpt is None, icon=":material/upload:"):
    st.session_state.pop("_ref_import_msg", None)
    try:
        run = import_uploads(ref_ckpt, ref_cfg, ref_variant)
        st.session_state["_ref_import_msg"] = ("success", f"Imported {ref_ckpt.name} as run {run.name}: "
                                               "pick it on the Students, Consistency or Compare pages.")
        st.rerun()
    except Exception as e:  # noqa: BLE001 - CmktError carries the clear message; anything else still gets one
        from cmkt.errors import CmktError
        st.session_state["_ref_import_msg"] = ("error", str(e) if isinstance(e, CmktError)
                                               else f"{ref_ckpt.name}: could not be imported ({type(e).__name__}: {e})")
ref_msg = st.session_state.get("_ref_import_msg")
if ref_msg:
    (st.success if ref_msg[0] == "success" else st.error)(ref_msg[1])
