"""Plotly figures and the small tables beside them. Pure functions of numpy arrays and lists:
no Streamlit calls, no scoring, so they are easy to test and to cache."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cmkt.educator.classview import skill_quartiles

PALETTE = ["#2f6fdf", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#6c8c1f", "#d81b60", "#00838f",
           "#a0522d", "#5c6bc0", "#c0ca33", "#ef6c00", "#26a69a", "#7e57c2", "#9e9d24", "#ec407a"]
CORRECT, WRONG = "#1f9d55", "#d62f2f"
MASTERY_META = "mastery"      # meta tag of the one mastery trace per practised skill
TRUE_META = "true_mastery"
ANSWERS_META = "answers"

LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10),
              font=dict(size=12), hoverlabel=dict(font_size=12))


def practised_skills(skills: np.ndarray, top: int | None = None) -> list[int]:
    """Skill indices in the order the student first practised them; with `top`, only the
    `top` most practised ones (ties: the earlier first)."""
    uniq, first, counts = np.unique(skills, return_index=True, return_counts=True)
    keep = np.ones(len(uniq), bool)
    if top is not None and top < len(uniq):
        order = np.lexsort((first, -counts))[:top]
        keep[:] = False
        keep[order] = True
    return [int(skills[i]) for i in sorted(first[keep])]


def skill_label(k: int, names, labels) -> str:
    name, lab = str(names[k]), str(labels[k])
    if name == lab:
        return f"skill {lab}" if lab.isdigit() else name
    return f"{name} ({lab})"


def mastery_figure(student: dict, names, labels, title: str = "", show_true: bool = False,
                   skills_shown: list[int] | None = None, height: int = 460) -> go.Figure:
    """One line per practised skill (meta "mastery"): its mastery after every step. The answers
    are markers on the line of the skill answered at that step (meta "answers"): green circles
    correct, red crosses wrong; their hover gives the step, skill, answer and the predicted
    probability of a correct answer. Lines carry no per-point text, so long students stay light."""
    s, r, p = student["skills"], student["responses"], student["probs"]
    m = student["mastery"]
    T = len(s)
    steps = np.arange(1, T + 1)
    shown = skills_shown if skills_shown is not None else practised_skills(s)
    fig = go.Figure()
    for i, k in enumerate(shown):
        color = PALETTE[i % len(PALETTE)]
        lab = skill_label(k, names, labels)
        fig.add_trace(go.Scatter(
            x=steps, y=m[:, k], mode="lines", name=lab, meta=MASTERY_META, legendgroup=lab,
            line=dict(color=color, width=2),
            hovertemplate=f"step %{{x}} · {_esc(lab)}<br>mastery %{{y:.3f}}<extra></extra>"))
        if show_true and student.get("true_mastery") is not None:
            fig.add_trace(go.Scatter(
                x=steps, y=student["true_mastery"][:, k], mode="lines", name=f"{lab} (true)",
                meta=TRUE_META, legendgroup=lab, showlegend=False, line=dict(color=color, width=1, dash="dot"),
                hovertemplate=f"step %{{x}} · {_esc(lab)}<br>true mastery %{{y:.3f}}<extra></extra>"))
    if T:
        answered = np.array([skill_label(int(k), names, labels) for k in s], dtype=object)
        y = m[np.arange(T), s]
        on_shown = np.isin(s, shown)
        parts = student.get("parts")
        for ok, text, symbol, color in ((1, "correct", "circle", CORRECT), (0, "wrong", "x", WRONG)):
            at = (r == ok) & on_shown
            if not at.any():
                continue
            cols = [answered[at], np.round(p[at], 3).astype(object)]
            why = ""
            if parts is not None:       # the three parts of the logit (mastery predictor)
                cols += [np.round(parts[at, i], 2).astype(object) for i in range(3)]
                why = ("<br>logit = mastery %{customdata[2]:+.2f} + difficulty %{customdata[3]:+.2f}"
                       " + recent answers %{customdata[4]:+.2f}")
            fig.add_trace(go.Scatter(
                x=steps[at], y=y[at], mode="markers", name=f"{text} answer", meta=ANSWERS_META,
                marker=dict(symbol=symbol, size=9, color=color, line=dict(width=1, color="white")),
                customdata=np.stack(cols, axis=1),
                hovertemplate=(f"step %{{x}} · <b>%{{customdata[0]}}</b><br>answer: {text}<br>"
                               "predicted P(correct) %{customdata[1]}" + why +
                               "<br>mastery after %{y:.3f}<extra></extra>")))
    fig.update_layout(**LAYOUT, title=title, height=height, hovermode="closest",
                      xaxis_title="step", yaxis_title="mastery", legend_title_text="skill")
    return fig


def explanation_figure(expl: dict, height: int = 260) -> go.Figure:
    """One prediction's logit as a waterfall of its three parts (cmkt.analysis.explain.explain_step),
    ending at the total, with P(correct) in the title."""
    names = ["mastery", "difficulty", "momentary"]
    labels = [expl["labels"][n] for n in names]
    if expl["mastery_before"] is not None:
        labels[0] += f" ({expl['mastery_before']:.2f})"
    vals = [expl["parts"][n] for n in names]
    fig = go.Figure(go.Waterfall(
        orientation="h", y=labels + ["logit"], x=vals + [expl["logit"]],
        measure=["relative"] * 3 + ["total"], text=[f"{0.0 if abs(v) < 0.005 else v:+.2f}" for v in vals + [expl["logit"]]],
        textposition="outside", increasing=dict(marker=dict(color=CORRECT)),
        decreasing=dict(marker=dict(color=WRONG)), totals=dict(marker=dict(color="#2f6fdf")),
        connector=dict(line=dict(color="#bbb")), hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    answer = "correct" if expl["response"] == 1 else "wrong"
    fig.update_layout(**{**LAYOUT, "margin": dict(l=10, r=40, t=50, b=10)}, height=height,
                      title=f"step {expl['step']} · {_esc(expl['skill'])}: P(correct) {expl['prob']:.2f} "
                            f"(the answer was {answer})",
                      xaxis_title="contribution to the logit of P(correct)",
                      yaxis=dict(autorange="reversed"), showlegend=False)
    return fig


def tradeoff_figure(points: pd.DataFrame, height: int = 360) -> go.Figure:
    """Faithfulness against accuracy: for each data set, test AUC and mastery AUC against
    momentary_bound (the cap on what the streams may add to mastery + difficulty).
    points: columns data, bound (None = unbounded), auc, mastery_auc."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("AUC of the prediction", "AUC of mastery alone"))
    order = sorted({b for b in points["bound"] if b is not None})
    ticks = [str(b) for b in order] + (["unbounded"] if points["bound"].isna().any() else [])
    for i, (data, grp) in enumerate(points.groupby("data", sort=False)):
        g = grp.assign(x=[("unbounded" if b is None or b != b else str(b)) for b in grp["bound"]])
        g = g.assign(order=[ticks.index(x) for x in g["x"]]).sort_values("order", kind="stable")
        color = PALETTE[i % len(PALETTE)]
        for col, key in ((1, "auc"), (2, "mastery_auc")):
            fig.add_trace(go.Scatter(x=g["x"], y=g[key], mode="lines+markers", name=str(data),
                                     legendgroup=str(data), showlegend=col == 1,
                                     line=dict(color=color), marker=dict(size=8),
                                     hovertemplate=f"{_esc(data)} · bound %{{x}}<br>{key} %{{y:.4f}}<extra></extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="momentary_bound (logit units)", categoryorder="array", categoryarray=ticks)
    fig.update_layout(**LAYOUT, height=height, legend_title_text="data")
    return fig


def _esc(text: str) -> str:
    """Literal text inside a plotly hovertemplate."""
    return str(text).replace("%{", "% {").replace("<", "&lt;")


def gain_heatmap(student: dict, names, labels, title: str = "", height: int | None = None,
                 skills_shown: list[int] | None = None) -> go.Figure:
    """Practised skills × steps: the gain credited to each skill at each step (red < 0 < blue).
    Small squares mark the skill answered at each step."""
    s = student["skills"]
    g = student["gains"]
    shown = skills_shown if skills_shown is not None else practised_skills(s)
    T = len(s)
    steps = np.arange(1, T + 1)
    ylab = [skill_label(k, names, labels) for k in shown]
    z = g[:, shown].T
    lim = float(np.nanmax(np.abs(z))) if z.size else 1.0
    fig = go.Figure(go.Heatmap(z=z, x=steps, y=ylab, colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim,
                               colorbar=dict(title="gain"),
                               hovertemplate="step %{x} · %{y}<br>gain %{z:.4f}<extra></extra>"))
    row_of = {k: i for i, k in enumerate(shown)}
    on = np.isin(s, shown)
    fig.add_trace(go.Scatter(x=steps[on], y=[ylab[row_of[int(k)]] for k in s[on]], mode="markers",
                             name="answered", marker=dict(symbol="square-open", size=7, color="#222"),
                             hoverinfo="skip", showlegend=False))
    fig.update_layout(**LAYOUT, title=title, height=height or max(260, 60 + 22 * len(shown)),
                      xaxis_title="step", yaxis=dict(autorange="reversed"))
    return fig


def skill_summary(student: dict, names, labels) -> pd.DataFrame:
    """Per practised skill: attempts, accuracy, mastery at the first and last step, its change,
    the total gain credited to it (sum over all steps) and how often its mastery fell."""
    s, r, m, g = student["skills"], student["responses"], student["mastery"], student["gains"]
    rows = []
    for k in practised_skills(s):
        at = s == k
        mk = m[:, k]
        drops = int((np.diff(mk) < -1e-6).sum()) if len(mk) > 1 else 0
        rows.append({"skill": str(labels[k]), "name": str(names[k]), "attempts": int(at.sum()),
                     "correct": int(r[at].sum()), "accuracy": float(r[at].mean()),
                     "first mastery": float(mk[0]), "last mastery": float(mk[-1]),
                     "change": float(mk[-1] - mk[0]), "total gain": float(g[:, k].sum()),
                     "mastery drops": drops})
    return pd.DataFrame(rows)


# ---- training curves ----------------------------------------------------------------

CURVE_PANELS = (("train_total", "training loss"), ("val_loss", "validation loss"),
                ("val_auc", "validation AUC"), ("val_accuracy", "validation accuracy"),
                ("monotonicity_violation_rate", "monotonicity violations"),
                ("negative_gain_rate", "negative gains"), ("bounds_violation_rate", "out of [0, 1]"),
                ("students_with_violation", "students with a violation"),
                ("mastery_performance_corr", "mastery–performance r"),
                ("mastery_auc", "mastery AUC"), ("mastery_saturation_rate", "mastery at the ceiling"),
                ("gain_performance_corr", "gain–performance r"),
                ("mastery_recovery_corr", "true-mastery recovery r"))


def training_curves(histories: dict[str, list[dict]], cols: int = 4, height_per_row: int = 210) -> go.Figure:
    """Per-epoch curves of one or more runs (metrics.jsonl), one small panel per metric
    (losses, validation AUC/accuracy, the violation rates, the correlations), one colour per run."""
    panels = [(k, t) for k, t in CURVE_PANELS
              if any(h.get(k) is not None for hist in histories.values() for h in hist)]
    rows = max(1, -(-len(panels) // cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for _, t in panels],
                        horizontal_spacing=0.06, vertical_spacing=0.5 / rows)
    for ri, (run, hist) in enumerate(histories.items()):
        color = PALETTE[ri % len(PALETTE)]
        epochs = [h.get("epoch") for h in hist]
        for pi, (key, title) in enumerate(panels):
            fig.add_trace(go.Scatter(
                x=epochs, y=[h.get(key) for h in hist], mode="lines+markers", name=run, legendgroup=run,
                showlegend=pi == 0, line=dict(color=color, width=2), marker=dict(size=5),
                hovertemplate=f"{run}<br>{title}<br>epoch %{{x}}: %{{y:.4f}}<extra></extra>"),
                row=pi // cols + 1, col=pi % cols + 1)
    n_epochs = max((len(h) for h in histories.values()), default=0)
    fig.update_layout(**LAYOUT, height=60 + rows * height_per_row,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0 + 0.12 / rows, x=0))
    fig.update_annotations(font_size=12)
    fig.update_xaxes(dtick=1 if n_epochs <= 15 else None, tickfont_size=10)
    fig.update_yaxes(tickfont_size=10)
    return fig


def epoch_table(history: list[dict]) -> pd.DataFrame:
    cols = ["epoch", "phase", "train_total", "val_loss", "val_auc", "val_accuracy", "monotonicity_violation_rate",
            "negative_gain_rate", "bounds_violation_rate", "students_with_violation",
            "mastery_performance_corr", "gain_performance_corr", "prediction_performance_corr", "mastery_auc",
            "mastery_saturation_rate", "mastery_recovery_corr", "stack_blend", "lr", "seconds"]
    df = pd.DataFrame(history)
    # the mastery phase's epochs (TrainConfig.mastery_epochs); the stack's line (ModelConfig.stack)
    if "phase" in df.columns:
        df["phase"] = df["phase"].fillna("main")
    return df[[c for c in cols if c in df.columns]] if len(df) else pd.DataFrame(columns=cols[:1])


# ---- class views ----------------------------------------------------------------------

def class_heatmap(final: np.ndarray, student_ids: list, ylab: list, title: str = "",
                  height: int | None = None) -> go.Figure:
    """Skills (rows) × students (columns): final mastery."""
    lo = min(0.0, float(np.nanmin(final))) if final.size else 0.0
    hi = max(1.0, float(np.nanmax(final))) if final.size else 1.0
    fig = go.Figure(go.Heatmap(z=final.T, x=[str(s) for s in student_ids], y=ylab, colorscale="Viridis",
                               zmin=lo, zmax=hi, colorbar=dict(title="mastery"),
                               hovertemplate="student %{x}<br>%{y}<br>final mastery %{z:.3f}<extra></extra>"))
    row = 18 if len(ylab) <= 40 else 12
    fig.update_layout(**LAYOUT, title=title, height=height or max(320, 80 + row * len(ylab)),
                      xaxis=dict(title="student", showticklabels=len(student_ids) <= 60, type="category"),
                      yaxis=dict(autorange="reversed"))
    return fig


def distribution_figure(final: np.ndarray, practised: np.ndarray, ylab: list, only_practised: bool = True,
                        title: str = "") -> go.Figure:
    """Per skill, the spread of final mastery over students as box plots (quartiles computed
    here, so the browser never receives every value)."""
    stats = skill_quartiles({"final": final, "attempts": practised}, only_practised)
    return quartiles_figure(stats, ylab, title)


def quartiles_figure(stats: pd.DataFrame, ylab: list, title: str = "") -> go.Figure:
    """Box plots from precomputed figures (cmkt.educator.classview.skill_quartiles; row k labelled
    ylab[k]): only a handful of numbers per skill reach the browser, however large the class.
    Skills with no value are left out."""
    fig = go.Figure()
    for r, lab in zip(stats.itertuples(index=False), ylab):
        if not r.n:
            continue
        fig.add_trace(go.Box(x=[lab], q1=[r.q1], median=[r.median], q3=[r.q3], lowerfence=[r.lowerfence],
                             upperfence=[r.upperfence], mean=[r.mean], name=lab, marker_color=PALETTE[0],
                             showlegend=False))
    fig.update_layout(**LAYOUT, title=title, height=420, yaxis_title="final mastery",
                      xaxis=dict(tickangle=-45, type="category"))
    return fig
