"""Pickers shared by the pages: a checkpoint, a data set and split, a student.

Each picker keeps its value in st.session_state under a page-specific key and can be
initialised from the URL's query parameters (run, student, data, split) when the page is
entered, so a link can be shared and survives a reload.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from cmkt.data.source import is_sim

from .state import (SPLITS, Entry, find_entry, list_entries, shared_data_folders, uploaded_data_files,
                    with_checkpoint)

OTHER = "__other__"


def _init(key: str, value):
    if key not in st.session_state:
        st.session_state[key] = value


def pick_entry(entries: list[Entry], key: str, label: str = "Run or checkpoint",
               from_url: bool = False, default: Entry | None = None, container=st) -> Entry:
    """A selectbox of checkpoints. With from_url, the `run` query parameter picks the
    initial value when the page is entered (an unknown run gets a message)."""
    keys = [e.key for e in entries]
    if st.session_state.get(key) not in keys:
        st.session_state.pop(key, None)
    if key not in st.session_state:
        want = st.query_params.get("run") if from_url else None
        hit = find_entry(entries, want) if want else None
        if want and hit is None:
            container.error(f"Unknown run {want!r}: it is not under the runs folder, the demo runs or "
                            "the uploaded checkpoints. Showing another run instead.")
        remembered = find_entry(entries, st.session_state.get(f"_last_{key}"))
        st.session_state[key] = (hit or remembered or default or entries[0]).key
    by_key = {e.key: e for e in entries}
    chosen = container.selectbox(label, keys, format_func=lambda k: by_key[k].label, key=key)
    st.session_state[f"_last_{key}"] = chosen
    return by_key[chosen]


def pick_entries(entries: list[Entry], key: str, default: list[Entry], label: str = "Checkpoints",
                 container=st) -> list[Entry]:
    keys = [e.key for e in entries]
    cur = [k for k in st.session_state.get(key, []) if k in keys]
    if key not in st.session_state or cur != st.session_state[key]:
        remembered = [k for k in st.session_state.get(f"_last_{key}", []) if k in keys]
        st.session_state[key] = cur or remembered or [e.key for e in default]
    by_key = {e.key: e for e in entries}
    chosen = container.multiselect(label, keys, format_func=lambda k: by_key[k].label, key=key)
    st.session_state[f"_last_{key}"] = list(chosen)
    return [by_key[k] for k in chosen]


def data_label(spec: str) -> str:
    if is_sim(spec):
        return f"simulated students ({spec})"
    p = Path(spec)
    kind = "folder" if p.is_dir() else "file"
    return f"{p.name} ({kind}: {p})"


def data_choices(own: str | None) -> list[str]:
    """The data sets offered for scoring: the checkpoint's own data first, then sim, the
    shared data folders and uploaded files."""
    out: list[str] = []
    for spec in [own, "sim", *map(str, shared_data_folders()), *map(str, uploaded_data_files())]:
        if spec and spec not in out:
            out.append(spec)
    return out


def pick_data(own: str | None, key: str, from_url: bool = False, container=st,
              allow_other: bool = True) -> tuple[str, str | None]:
    """(data spec, split). The checkpoint's own data and the test split by default."""
    choices = data_choices(own)
    options = choices + ([OTHER] if allow_other else [])
    dkey, skey, okey = f"{key}_data", f"{key}_split", f"{key}_other"
    if st.session_state.get(dkey) not in options:
        st.session_state.pop(dkey, None)
    if dkey not in st.session_state:
        want = st.query_params.get("data") if from_url else None
        if want and want not in choices and want != st.session_state.get("_last_data_spec"):
            # a link opens only the data sets offered here: never an arbitrary path from a URL
            container.error(f"Unknown data set {want!r} in the link: a link can open the checkpoint's "
                            "own data, sim, the shared data folders and uploaded files only. Showing "
                            f"{data_label(choices[0])} instead (type a path under “Another file or "
                            "folder path…” to open another file).")
        st.session_state[dkey] = want if want in choices else choices[0]
    if skey not in st.session_state:
        want = st.query_params.get("split") if from_url else None
        st.session_state[skey] = want if want in SPLITS else "test"
    c1, c2 = container.columns([3, 2]) if container is st else (container, container)
    spec = c1.selectbox("Data", options, key=dkey,
                        format_func=lambda s: "Another file or folder path…" if s == OTHER else
                        ("the checkpoint's own data: " if s == own else "") + data_label(s))
    if spec == OTHER:
        spec = c1.text_input("Path to a data file or a folder with train.csv / test.csv", key=okey).strip()
        if not spec:
            st.info("Type a path to a data file or folder.")
            st.stop()
    st.session_state["_last_data_spec"] = spec      # what the pages echo into the URL
    whole_file = not is_sim(spec) and Path(spec).is_file()
    split = c2.radio("Split", SPLITS, key=skey, horizontal=True, disabled=whole_file,
                     help="sim and folders: which split to score (test by default); a single file is "
                          "scored whole")
    return spec, (None if whole_file else split)


def pick_student(ids: list[str], key: str, from_url: bool = False, container=st) -> str:
    """A searchable selectbox of student ids (type to filter)."""
    if st.session_state.get(key) not in ids:
        st.session_state.pop(key, None)
    if key not in st.session_state:
        want = st.query_params.get("student") if from_url else None
        remembered = st.session_state.get(f"_last_{key}")
        # the page writes the student it shows into the URL: that echo is not a link to complain
        # about when the student is simply not in a newly chosen data set
        if want and want not in ids and want != remembered:
            container.error(f"Unknown student {want!r} in this data set and split "
                            f"({len(ids)} students). Showing {ids[0]} instead.")
        st.session_state[key] = want if want in ids else (remembered if remembered in ids else ids[0])
    chosen = container.selectbox(f"Student ({len(ids):,} in this set: type to search)", ids, key=key)
    st.session_state[f"_last_{key}"] = chosen
    return chosen


def data_notes(spec: str, notes: list[str] | None, container=st) -> None:
    """What the reader changed while reading the data (rows sorted by their order column, rows
    with no skill dropped): one note under the data picker, nothing when there is none."""
    if notes:
        name = spec if is_sim(spec) else Path(spec).name
        container.info(f"Note on {name}: " + "; ".join(notes) + ".", icon=":material/info:")


def pick_checkpoint_and_data(prefix: str) -> tuple[list[Entry], Entry, str, str | None]:
    """The header of the per-checkpoint pages: a checkpoint (from the URL when it names one),
    a data set and a split. Stops the page with a hint when there is no checkpoint yet.
    Returns (all checkpoints, the chosen one, data spec, split)."""
    entries = with_checkpoint(list_entries())
    if not entries:
        st.info("No checkpoints yet: train a run on the Train page or upload one on the Runs page.")
        st.stop()
    c1, c2 = st.columns([2, 3])
    entry = pick_entry(entries, f"{prefix}_run", from_url=True, container=c1)
    with c2:
        data, split = pick_data(entry.data, f"{prefix}_data_{entry.key}", from_url=True)
    return entries, entry, data, split
