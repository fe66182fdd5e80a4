"""Self-contained HTML reports for people who never open the dashboard: one student (summary,
what to practise next, mastery curves, per-skill table) or the whole class (skills table and
heatmap). plotly.js is embedded inline, so a report opens with no network; it prints on A4."""
from __future__ import annotations

import datetime as _dt
from html import escape

import numpy as np

from cmkt.educator.classview import class_matrices, skills_table
from cmkt.errors import CmktError
from cmkt.educator.practice import (DEVELOPING, LEVEL_COLORS, LEVEL_LEGEND, SECURE, below_words, practise_next,
                       skill_name, skill_rows, summary_text)

WIDTH = 700               # px: the printable width of A4 with 12 mm margins
COLORS = ["#2f6fdf", "#e4572e", "#17a398", "#8e44ad", "#6c8c1f", "#d81b60", "#00838f", "#a0522d"]
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2433;
       max-width: 186mm; margin: 12px auto; font-size: 11pt; line-height: 1.4; }
h1 { font-size: 18pt; margin: 0 0 2px; } h2 { font-size: 13pt; margin: 14px 0 4px; }
.meta, .note, footer { color: #5b6475; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #e3e6ec; }
td.num, th.num { text-align: right; }
.lvl { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; font-size: 8.5pt; }
.summary { background: #f3f6fb; padding: 6px 10px; border-radius: 6px; }
ol { margin: 2px 0; padding-left: 22px; }
section, .plotly-graph-div, tr { break-inside: avoid; page-break-inside: avoid; }
@page { size: A4; margin: 12mm; }
@media print { body { margin: 0; max-width: none; } }
"""


def _go():
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
    except ImportError:
        raise CmktError("reports need the plotly package (pip install plotly)") from None
    return go, pio


def _chip(lv: str) -> str:
    return f'<span class="lvl" style="background:{LEVEL_COLORS.get(lv, "#888")}">{escape(lv)}</span>'


def _bands(fig) -> None:
    """Shade the three mastery levels behind a mastery chart."""
    for y0, y1, lv in ((0, DEVELOPING, "not yet"), (DEVELOPING, SECURE, "developing"), (SECURE, 1, "secure")):
        fig.add_hrect(y0=y0, y1=y1, fillcolor=LEVEL_COLORS[lv], opacity=0.07, line_width=0, layer="below")


def mastery_chart(student: dict, names, labels, max_skills: int = 8):
    """The mastery of the (at most max_skills) most practised skills after every step; the
    answers are markers on the answered skill's line (filled correct, open wrong)."""
    go, _ = _go()
    s, r, m = student["skills"], student["responses"], student["mastery"]
    steps = np.arange(1, len(s) + 1)
    uniq, counts = np.unique(s, return_counts=True)
    shown = [int(k) for k in uniq[np.argsort(-counts, kind="stable")][:max_skills]]
    fig = go.Figure()
    for i, k in enumerate(shown):
        c = COLORS[i % len(COLORS)]
        at = s == k
        fig.add_trace(go.Scatter(x=steps, y=np.clip(m[:, k], 0, 1), mode="lines", name=skill_name(k, names, labels),
                                 legendgroup=str(k), line=dict(color=c, width=2)))
        fig.add_trace(go.Scatter(x=steps[at], y=np.clip(m[at, k], 0, 1), mode="markers", legendgroup=str(k),
                                 showlegend=False, marker=dict(color=c, size=7, line=dict(color=c, width=1.5),
                                 symbol=np.where(r[at] == 1, "circle", "circle-open").tolist())))
    _bands(fig)
    fig.update_layout(template="plotly_white", width=WIDTH, height=330, margin=dict(l=45, r=10, t=10, b=40),
                      xaxis_title="step", yaxis=dict(title="mastery", range=[0, 1.02], tickvals=[0, DEVELOPING, SECURE, 1]),
                      legend=dict(font_size=10), font=dict(size=11))
    return fig


def class_heatmap(final: np.ndarray, attempts: np.ndarray, ylab: list, max_students: int = 300):
    """Skills (rows, as given) × students (weakest left): final mastery; blank where a student
    never practised the skill. Large classes are shown as an even sample of max_students."""
    go, _ = _go()
    z = np.where(attempts > 0, final, np.nan)
    with np.errstate(all="ignore"):
        score = np.nanmean(z, axis=0)
    order = np.argsort(np.where(np.isfinite(score), score, np.inf), kind="stable")
    if len(order) > max_students:
        order = order[np.linspace(0, len(order) - 1, max_students).round().astype(int)]
    scale = [[0, LEVEL_COLORS["not yet"]], [DEVELOPING, LEVEL_COLORS["not yet"]],
             [DEVELOPING, LEVEL_COLORS["developing"]], [SECURE, LEVEL_COLORS["developing"]],
             [SECURE, LEVEL_COLORS["secure"]], [1, LEVEL_COLORS["secure"]]]
    fig = go.Figure(go.Heatmap(z=z[:, order], y=ylab, colorscale=scale, zmin=0, zmax=1,
                               colorbar=dict(title="mastery", tickvals=[0.2, 0.55, 0.85],
                                             ticktext=["not yet", "developing", "secure"])))
    fig.update_layout(template="plotly_white", width=WIDTH, height=max(220, 60 + 18 * len(ylab)),
                      margin=dict(l=10, r=10, t=10, b=30), font=dict(size=10),
                      xaxis=dict(title=f"students, weakest (left) to strongest ({len(order)} shown)",
                                 showticklabels=False), yaxis=dict(autorange="reversed"))
    return fig


def _fig_html(fig, first: bool) -> str:
    _, pio = _go()
    return pio.to_html(fig, full_html=False, include_plotlyjs=first,
                       config={"displayModeBar": False, "staticPlot": False})


def _table(df, cols: dict) -> str:
    """An HTML table of df's columns `cols` (column -> (header, format or None))."""
    head = "".join(f'<th class="{"num" if f else ""}">{escape(h)}</th>' for h, f in cols.values())
    body = []
    for _, row in df.iterrows():
        cells = []
        for c, (_, f) in cols.items():
            v = row[c]
            if c == "level":
                cells.append(f"<td>{_chip(v)}</td>")
            else:
                cells.append(f'<td class="num">{f.format(v)}</td>' if f else f"<td>{escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _meta_line(scored) -> str:
    meta = scored.meta
    run = meta.get("run") or str(meta.get("path", "checkpoint"))
    mode = (meta.get("model_config") or {}).get("mode", "")
    epoch = meta.get("epoch")
    model = f"{run} ({mode}" + (f", best epoch {epoch}" if epoch is not None else "") + ")"
    return (f"Model: {escape(model)} · Data: {escape(str(scored.data.source or meta.get('data', '')))} · "
            f"made {_dt.date.today().isoformat()} with cmkt")


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}"
            "<footer><p>Mastery is the model's estimate (0 to 1) of how well a skill is known after each "
            "answer; it is an estimate from the answers so far, not a grade.</p></footer></body></html>\n")


def student_report(scored, student: str) -> str:
    """The HTML report of one student of a scored data set (KeyError for an unknown id)."""
    i = scored.data.index_of(student)
    arr = scored.traj.student(i)
    names, labels = scored.skill_names, scored.skill_labels
    rows = skill_rows(arr, names, labels)
    nxt = practise_next(arr, names, labels)
    T = len(arr["skills"])
    acc = f"{arr['responses'].mean():.0%}" if T else "—"
    items = "".join(f"<li><b>{escape(s.skill)}</b> {_chip(s.level)} — {escape(s.reason)}</li>" for s in nxt)
    body = [f"<h1>Student report: {escape(str(student))}</h1><p class='meta'>{_meta_line(scored)}</p>",
            f"<section><h2>Summary</h2><p class='summary'>{T} answers on {len(rows)} skills, {acc} correct. "
            f"{escape(summary_text(rows))}</p></section>",
            "<section><h2>Practise next</h2>" + (f"<ol>{items}</ol>" if items else "<p>No practice yet.</p>")
            + "<p class='note'>Rule: skills not yet secure where practice has raised mastery come first "
            "(most gained per attempt first); then not-yet-secure skills where it has not (lowest first); "
            "then secure ones.</p></section>"]
    if T:
        body.append("<section><h2>Mastery over time</h2>" + _fig_html(mastery_chart(arr, names, labels), True)
                    + "<p class='note'>One line per skill (the 8 most practised at most); dots are answers "
                    "to that skill: filled = correct, open = wrong. Shading: the three levels.</p></section>")
    body.append("<section><h2>Skills</h2>" + _table(rows, {
        "skill": ("skill", None), "attempts": ("attempts", "{}"), "correct": ("correct", "{}"),
        "accuracy": ("accuracy", "{:.0%}"), "mastery": ("mastery now", "{:.2f}"), "level": ("level", None),
        "gain": ("gain since first try", "{:+.2f}")}) + f"<p class='note'>{escape(LEVEL_LEGEND)}</p></section>")
    return _page(f"Student report: {student}", "".join(body))


def class_report(scored, threshold: float = DEVELOPING, max_students: int = 300) -> str:
    """The HTML report of a whole scored data set: skills table ("needs attention" first) and
    the final-mastery heatmap."""
    traj = scored.traj
    names, labels = scored.skill_names, scored.skill_labels
    cm = class_matrices(traj)
    table = skills_table(traj, names, labels, threshold, cm=cm)
    S = len(traj.student_ids)
    top = ", ".join(f"{r.skill} ({r['share below']:.0%} below)" for _, r in table.head(3).iterrows())
    body = [f"<h1>Class report</h1><p class='meta'>{_meta_line(scored)}</p>",
            f"<section><h2>Summary</h2><p class='summary'>{S} students, {len(table)} skills practised, "
            f"{len(traj.skills)} answers. Needs most attention: {escape(top or '—')}. "
            f"'Below' means final mastery {escape(below_words(threshold))}.</p></section>",
            "<section><h2>Skills, needs attention first</h2>" + _table(table, {
                "skill": ("skill", None), "students": ("students", "{}"), "mean mastery": ("mean mastery", "{:.2f}"),
                "level": ("level", None), "share below": ("share below", "{:.0%}"), "below": ("below", "{}"),
                "attempts": ("attempts", "{}"), "accuracy": ("accuracy", "{:.0%}")})
            + f"<p class='note'>{escape(LEVEL_LEGEND)}</p></section>"]
    if len(table):
        idx = table["skill_index"].to_numpy()
        fig = class_heatmap(cm["final"][:, idx].T, cm["attempts"][:, idx].T, list(table["skill"]), max_students)
        body.append("<section><h2>Final mastery: skills × students</h2>" + _fig_html(fig, True)
                    + "<p class='note'>Blank: the student never practised the skill.</p></section>")
    return _page("Class report", "".join(body))
