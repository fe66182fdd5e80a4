"""Accuracy per second: every finished run's test AUC against its training seconds, per data set,
coloured by model kind and marked by preset (read from the run folders' results.json)."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

KIND_COLORS = {"cumulative": "#1f77b4", "original": "#ff7f0e", "dkt": "#2ca02c", "bkt": "#9467bd",
               "pfa": "#8c564b", "gainakt2-ref": "#7f7f7f"}


def efficiency_frame(entries) -> pd.DataFrame:
    """One row per finished run with a test AUC and a training time (demo runs included)."""
    rows = []
    for e in entries:
        i = e.info
        if i is None or i.state != "finished" or i.test_auc is None or not i.train_seconds:
            continue
        rows.append({"run": e.name, "kind": e.mode, "preset": i.preset or "?", "data": i.data or "?",
                     "train seconds": max(float(i.train_seconds), 0.1), "test AUC": float(i.test_auc)})
    return pd.DataFrame(rows, columns=["run", "kind", "preset", "data", "train seconds", "test AUC"])


def efficiency_figure(df: pd.DataFrame, height: int = 380) -> go.Figure:
    """Test AUC against training seconds (log scale), a panel per data set."""
    fig = px.scatter(df, x="train seconds", y="test AUC", color="kind", symbol="preset", facet_col="data",
                     hover_name="run", log_x=True, color_discrete_map=KIND_COLORS, height=height,
                     facet_col_spacing=0.06)
    fig.update_traces(marker_size=11)
    fig.update_yaxes(matches=None, showticklabels=True, tickformat=".3f")
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("data=", "")))
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), legend_title_text="")
    return fig
