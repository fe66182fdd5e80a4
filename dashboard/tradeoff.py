"""The faithfulness trade-off section: momentary_bound against AUC and mastery AUC, from the
measured points shipped in assets/tradeoff.json (benchmarks/tradeoff.py) and from the finished
runs under the runs folder that use the `mastery` predictor."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from cmkt.errors import CmktError
from cmkt.io import read_json
from cmkt.runs import RESULTS, read_config

from .charts import tradeoff_figure
from .state import Entry

ASSET = Path(__file__).resolve().parent.parent / "assets" / "tradeoff.json"
COLUMNS = ["data", "bound", "auc", "mastery_auc", "corr_ratio", "source"]


def shipped_points(path: Path = ASSET) -> tuple[pd.DataFrame, dict]:
    """The measured points of benchmarks/tradeoff.py (empty if the file is missing or damaged)."""
    try:
        doc = json.loads(path.read_text())
        df = pd.DataFrame(doc["points"])
        df["source"] = "measured (" + str(doc.get("preset", "?")) + " preset)"
        return df.reindex(columns=COLUMNS), doc
    except (OSError, ValueError, KeyError, TypeError):
        return pd.DataFrame(columns=COLUMNS), {}


def run_points(entries: list[Entry]) -> pd.DataFrame:
    """One point per finished run with the mastery predictor: its test (else validation) metrics."""
    rows = []
    for e in entries:
        if e.info is None or e.state != "finished":
            continue
        try:
            model = read_config(e.path).get("model") or {}
        except CmktError:
            continue
        if model.get("predictor") != "mastery" or model.get("mode") != "cumulative":
            continue
        res = read_json(Path(e.path) / RESULTS, None) or {}
        m = res.get("test") or {}
        if m.get("auc") is None:
            continue
        r_m, r_p = m.get("mastery_performance_corr"), m.get("prediction_performance_corr")
        rows.append({"data": f"{e.data_name or e.data} (runs here)", "bound": model.get("momentary_bound"),
                     "auc": m.get("auc"), "mastery_auc": m.get("mastery_auc"),
                     "corr_ratio": (r_m / r_p) if r_m is not None and r_p else None, "source": e.name})
    return pd.DataFrame(rows, columns=COLUMNS)


def show_tradeoff(entries: list[Entry]) -> None:
    st.subheader("Faithfulness trade-off")
    st.caption("With the `mastery` predictor the logit is mastery + difficulty + a momentary part from "
               "the streams, capped at ±momentary_bound. At 0 every prediction is what mastery says; "
               "unbounded, the streams may overrule it. A monotone mastery cannot take evidence against "
               "it, so its own AUC stays below the prediction's: compare it with the counting models.")
    shipped, doc = shipped_points()
    frames = [d for d in (shipped, run_points(entries)) if len(d)]
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if not len(points):
        st.info("No measured points: run `python benchmarks/tradeoff.py --update-docs`, or train "
                "cumulative runs with `--set predictor=mastery --set momentary_bound=B`.")
        return
    points["bound"] = points["bound"].astype(object).where(points["bound"].notna(), None)
    st.plotly_chart(tradeoff_figure(points), key="tradeoff_fig")
    table = points.assign(bound=[("unbounded" if b is None else f"{b:g}") for b in points["bound"]])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.4f") for c in ("auc", "mastery_auc", "corr_ratio")})
    counting = {k: v for k, v in (doc.get("counting") or {}).items() if v}
    if counting:
        from cmkt.analysis.counting import COUNTING_LABELS
        rows = [{"data": d, "counting model": COUNTING_LABELS.get(k, k), "AUC": v}
                for d, block in counting.items() for k, v in block.items()]
        st.caption("Counting models on the same test split (logistic regression fitted on train.csv): "
                   "where a mastery estimate should land.")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                     column_config={"AUC": st.column_config.NumberColumn(format="%.4f")})
    if doc.get("command"):
        st.caption(f"Measured points: `{doc['command']}` ({doc.get('date', '')}).")
