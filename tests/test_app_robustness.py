"""Issue #6 on the dashboard side: every bad file a user can upload, uploads over the size limit,
unsafe run names and deep links, two runs at once seen by a restarted dashboard, and where the
real server listens.

The readers and the checkpoint loader themselves are tested in test_data_readers.py and
test_robustness.py; here each case goes through the page a user would use, and must give exactly
one error box naming the uploaded file and the problem, no exception, and nothing kept.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import APP, DEMO, ROOT, copy_demo_run, free_port

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")]

DEMO_CKPT = DEMO / "demo-cumulative" / "best.safetensors"
SMALL = dict(max_len=20, d_model=16, n_heads=2, n_blocks=1, d_ff=16)


def no_exception(at):
    assert not at.exception, [e.value for e in at.exception]


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def kept_files(runs: Path) -> list[Path]:
    """Every file under <runs>/uploads (temp files included)."""
    up = runs / "uploads"
    return sorted(p for p in up.rglob("*") if p.is_file()) if up.exists() else []


def run_folders(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir() if p.name != "uploads")


# ---- a spy on file access: nothing outside the runs folder is read ----------------------

_SPY: dict = {"trap": None, "hits": []}


def _audit(event, args):
    trap = _SPY["trap"]
    if trap is None or event not in ("open", "os.listdir", "os.scandir", "os.remove", "os.rmdir",
                                     "os.rename", "shutil.rmtree", "os.mkdir"):
        return
    p = args[0] if args else None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    if isinstance(p, (str, os.PathLike)) and os.path.abspath(os.fspath(p)).startswith(trap):
        _SPY["hits"].append((event, os.fspath(p)))


sys.addaudithook(_audit)       # audit hooks cannot be removed: it does nothing while trap is None


class watch_folder:
    """`with watch_folder(path) as hits:` records every open / listdir / delete under path."""

    def __init__(self, path: Path):
        self.path = str(Path(path).resolve())

    def __enter__(self) -> list:
        _SPY["hits"] = []
        _SPY["trap"] = self.path
        return _SPY["hits"]

    def __exit__(self, *exc):
        _SPY["trap"] = None


# ---- data uploads on the Train page -----------------------------------------------------

def train_with_upload(dash_app, name: str, content: bytes):
    at = dash_app("train", run=False)
    at.session_state["tr_source"] = "upload"
    at.run()
    at.file_uploader(key="tr_upload").set_value((name, content, "text/csv"))
    at.run()
    return at


def _long_line(n: int = 100_000) -> bytes:
    ids = ",".join(str(1 + k % 7) for k in range(n))
    resp = ",".join(str(k % 2) for k in range(n))
    return f"{n}\n{ids}\n{resp}\n".encode()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"

# (file name, content, words the message must hold, the line it must name or None)
BAD_DATA = {
    "empty": ("empty.csv", b"", "the file is empty", None),
    "only-blank-lines": ("blank.csv", b"  \n\n \r\n", "empty", None),
    "binary-garbage": ("picture.csv", PNG, "binary data", None),
    "not-utf8": ("latin1.csv", b"2\n1,2\n1,\xff\xfe\n", "not UTF-8", 3),
    "long-missing-column": ("log.csv", b"user_id,skill_id,score\na,1,1\n", "correct", 1),
    "long-wrong-columns": ("log.csv", b"user_id,problem,correct\na,1,1\n", "skill", 1),
    "pykt-missing-column": ("train_valid_sequences.csv",
                            b"fold,uid,concepts,selectmasks\n0,1,1,1\n", "skill column", 1),
    "count-disagrees": ("three.csv", b"3\n1,2\n1,0\n", "count says 3", 1),
    "unequal-length": ("three.csv", b"2\n1,2,3\n1,0\n", "same length", 3),
    "non-integer-id": ("three.csv", b"2\n1,x\n1,0\n", "not an integer", 2),
    "float-id": ("three.csv", b"2\n1,2.0\n1,0\n", "not an integer", 2),
    "negative-id": ("three.csv", b"2\n1,-4\n1,0\n", "invalid", 2),
    "zero-id": ("three.csv", b"2\n1,0\n1,0\n", "start at 1", 2),
    "huge-id": ("three.csv", b"2\n1,99999999999999999999999\n1,0\n", "too large", 2),
    "response-2": ("three.csv", b"2\n1,2\n1,2\n", "not 0 or 1", 3),
    "response-nan": ("three.csv", b"2\n1,2\n1,NaN\n", "not 0 or 1", 3),
    "long-response-nan": ("log.csv", b"user_id,skill_id,correct\na,1,1\na,1,NaN\n", "not 0 or 1", 3),
    "long-response-blank": ("log.csv", b"user_id,skill_id,correct\na,1,1\na,1,\n", "not 0 or 1", 3),
    "truncated-last-student": ("three.csv", b"2\n1,2\n1,0\n2\n1,2\n", "truncated", 4),
    "bad-line-after-long-line": ("long_then_bad.csv", _long_line(50_000) + b"2\n1,2\n1,7\n",
                                 "not 0 or 1", 6),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_train_refuses_bad_data_upload(dash_app, dash_runs, case):
    name, content, problem, line = BAD_DATA[case]
    at = train_with_upload(dash_app, name, content)
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1, errs
    assert errs[0].startswith(name) and problem in errs[0], errs[0]
    if line is not None:
        assert f"line {line}:" in errs[0], errs[0]
    assert "Traceback" not in errs[0] and str(dash_runs) not in errs[0]   # the upload's name, not a temp file
    assert kept_files(dash_runs) == []
    # Start with the refused file: still exactly the one message, and no run folder
    at.button(key="tr_start").click().run()
    no_exception(at)
    assert errors(at) == errs
    assert run_folders(dash_runs) == [] and kept_files(dash_runs) == []


# (file name, content, students, interactions, a note that must be shown or None)
GOOD_DATA = {
    "bom-and-crlf": ("windows.csv", "\ufeff3\r\n1,2,3\r\n0,1,1\r\n2\r\n2,2\r\n1,0\r\n".encode(), 2, 5, None),
    "enormous-line": ("long_line.csv", _long_line(), 1, 100_000, None),
    "long-interleaved-duplicate-ids": (
        "log.csv", b"user_id,skill_id,correct\na,1,1\nb,2,0\na,2,1\nb,1,1\na,1,0\n", 2, 5, None),
    "unsorted-timestamps": (
        "times.csv", b"user_id,skill_id,correct,timestamp\nu,1,1,2020-01-02 10:00:00\n"
                     b"u,2,0,2020-01-01 10:00:00\nv,3,1,2020-01-01 09:00:00\n", 2, 3,
        "sorted 1 students by timestamp"),
    "rows-without-skill": (
        "gaps.csv", b"user_id,skill_id,correct\na,1,1\na,,0\nb,2,1\n", 2, 2, "dropped 1 rows with no skill"),
}


@pytest.mark.parametrize("case", list(GOOD_DATA))
def test_train_accepts_messy_but_valid_upload(dash_app, dash_runs, case):
    name, content, students, interactions, note = GOOD_DATA[case]
    at = train_with_upload(dash_app, name, content)
    no_exception(at)
    assert errors(at) == []
    ok = " ".join(s.value for s in at.success)
    assert name in ok and f"{students:,} students" in ok and f"{interactions:,} interactions" in ok, ok
    kept = kept_files(dash_runs)
    assert [p.name for p in kept] == [name] and kept[0].read_bytes() == content
    infos = [i.value for i in at.info]
    if note:
        assert any(note in i for i in infos), infos           # the reader's note is shown to the user
    else:
        assert not any(i.startswith("Note") for i in infos), infos


def test_upload_over_the_size_limit_is_refused(dash_app, dash_runs):
    """The browser widget enforces server.maxUploadSize; the app refuses bigger files itself too."""
    from streamlit import config
    old = config.get_option("server.maxUploadSize")
    big = _long_line(2**19)                         # a valid file of 2 MB (4 bytes per interaction)
    assert 1.5 * 2**20 < len(big) < 2.5 * 2**20
    config.set_option("server.maxUploadSize", 1)
    try:
        at = train_with_upload(dash_app, "big.csv", big)
        no_exception(at)
        assert errors(at) == ["big.csv: the file is 2.0 MB, over the 1 MB upload limit"]
        at = dash_app("runs")
        at.file_uploader(key="ckpt_upload").set_value(("big.safetensors", big, "application/octet-stream"))
        at.run()
        no_exception(at)
        assert errors(at) == ["big.safetensors: the file is 2.0 MB, over the 1 MB upload limit"]
    finally:
        config.set_option("server.maxUploadSize", old)
    assert kept_files(dash_runs) == []
    at = train_with_upload(dash_app, "big.csv", big)     # under the configured limit again: kept
    no_exception(at)
    assert errors(at) == [] and [p.name for p in kept_files(dash_runs)] == ["big.csv"]


# ---- data the model does not know (Students page path, Class page upload) ---------------

def test_students_path_with_more_skills_than_the_model(dash_app, dash_runs):
    bad = dash_runs.parent / "forty_skills.csv"
    bad.write_text("3\n1,40,41\n1,0,1\n")
    at = dash_app("students", {"run": "demo/demo-cumulative"})
    key = "stu_data_demo/demo-cumulative"
    at.selectbox(key=f"{key}_data").set_value("__other__").run()
    at.text_input(key=f"{key}_other").set_value(str(bad)).run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and "forty_skills.csv" in errs[0] and "not one the model knows" in errs[0], errs
    assert not at.get("plotly_chart")


def test_class_uploaded_data_with_more_skills_than_the_model(dash_app, dash_runs):
    up = dash_runs / "uploads" / "data"
    up.mkdir(parents=True)
    (up / "wide.csv").write_text("2\n3,13\n1,0\n")
    at = dash_app("class")
    entry = at.selectbox(key="cls_run").value
    at.selectbox(key=f"cls_data_{entry}_data").set_value(str((up / "wide.csv").resolve())).run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and "wide.csv" in errs[0] and "13" in errs[0] and "not one the model knows" in errs[0]
    assert not at.get("plotly_chart")


def test_students_shows_the_readers_notes(dash_app, dash_runs):
    log = dash_runs.parent / "unsorted.csv"
    log.write_text("user_id,skill_id,correct,order_id\nu,3,1,5\nu,4,0,2\nu,3,1,9\nv,1,1,1\n")
    at = dash_app("students", {"run": "demo/demo-cumulative"})
    key = "stu_data_demo/demo-cumulative"
    at.selectbox(key=f"{key}_data").set_value("__other__").run()
    at.text_input(key=f"{key}_other").set_value(str(log)).run()
    no_exception(at)
    assert errors(at) == []      # also: the previous student, echoed in the URL, is no "unknown student"
    assert any("unsorted.csv" in i.value and "sorted 1 students by order_id" in i.value for i in at.info)
    assert at.get("plotly_chart")


# ---- checkpoints uploaded on the Runs page ----------------------------------------------

class Payload:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _safetensors_bytes(tmp: Path, tensors: dict, metadata: dict | None = None) -> bytes:
    f = tmp / "t.safetensors"
    save_file(tensors, str(f), metadata=metadata)
    return f.read_bytes()


def _torch_bytes(tmp: Path, obj) -> bytes:
    f = tmp / "t.pt"
    torch.save(obj, f)
    return f.read_bytes()


def _bad_checkpoint(case: str, tmp: Path, marker: Path) -> tuple[str, bytes, str]:
    """(upload name, bytes, words the message must hold)."""
    from cmkt.model import GainAKT2, ModelConfig
    good = DEMO_CKPT.read_bytes()
    if case == "empty":
        return "empty.safetensors", b"", "empty"
    if case == "truncated":
        return "truncated.safetensors", good[: len(good) // 2], "not a readable checkpoint"
    if case == "random-bytes":
        return "random.safetensors", os.urandom(5000), "not a readable checkpoint"
    if case == "random-bytes-pt":
        return "random.pt", os.urandom(5000), "checkpoint"
    if case == "text-file":
        return "notes.safetensors", b"these are my notes\n", "not a readable checkpoint"
    if case == "foreign-safetensors":
        return "resnet.safetensors", _safetensors_bytes(tmp, {"weight": torch.randn(3, 3),
                                                              "bias": torch.randn(3)}), "not a cmkt checkpoint"
    if case == "foreign-pytorch":
        return "other.pt", _torch_bytes(tmp, {"fc.weight": torch.randn(2, 2)}), "not a cmkt checkpoint"
    if case == "pytorch-module":
        return "module.pt", _torch_bytes(tmp, torch.nn.Linear(2, 2)), "refused"
    if case == "skill-count-mismatch":
        model = GainAKT2(ModelConfig(num_skills=5, **SMALL))
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        cfg = ModelConfig(num_skills=10, **SMALL).to_dict()
        return "mismatch.safetensors", _safetensors_bytes(
            tmp, state, {"format": "cmkt-checkpoint-v1", "model_config": json.dumps(cfg), "meta": "{}"}), "do not fit"
    if case == "pickle-payload-torch":
        obj = {"model_config": {"num_skills": 5}, "state_dict": {}, "x": Payload(marker)}
        return "evil.pt", _torch_bytes(tmp, obj), "refused"
    if case == "pickle-payload-plain":
        return "evil.pth", pickle.dumps({"state_dict": Payload(marker)}), "refused"
    if case == "pickle-as-safetensors":
        return "evil.safetensors", pickle.dumps(Payload(marker)), "checkpoint"
    raise AssertionError(case)


BAD_CHECKPOINTS = ["empty", "truncated", "random-bytes", "random-bytes-pt", "text-file",
                   "foreign-safetensors", "foreign-pytorch", "pytorch-module", "skill-count-mismatch",
                   "pickle-payload-torch", "pickle-payload-plain", "pickle-as-safetensors"]


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_runs_refuses_bad_checkpoint_upload(dash_app, dash_runs, tmp_path, case):
    marker = tmp_path / "PWNED"
    name, content, problem = _bad_checkpoint(case, tmp_path, marker)
    at = dash_app("runs")
    at.file_uploader(key="ckpt_upload").set_value((name, content, "application/octet-stream"))
    at.run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1, errs
    assert errs[0].startswith(f"{name}:") and problem in errs[0], errs[0]
    assert "Traceback" not in errs[0] and "\n" not in errs[0] and str(dash_runs) not in errs[0]
    assert not marker.exists(), "the pickle payload ran"
    assert kept_files(dash_runs) == []
    assert name not in set(at.dataframe[0].value["run"])
    at.run()                                   # a rerun neither repeats nor loses the message
    no_exception(at)
    assert errors(at) == errs and kept_files(dash_runs) == []


# ---- run names and deep links ------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "ABS", "a/b", "..", ".hidden", "x/../../evil", "a\\b"])
def test_train_refuses_unsafe_run_names(dash_app, dash_runs, name):
    outside = dash_runs.parent
    before = sorted(p.name for p in outside.iterdir())
    if name == "ABS":
        name = str(outside / "abs-run")
    at = dash_app("train")
    at.text_input(key="tr_name").set_value(name)
    with watch_folder(outside) as hits:
        at.button(key="tr_start").click().run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and "invalid run name" in errs[0] and repr(name) in errs[0], errs
    assert sorted(p.name for p in outside.iterdir()) == before          # nothing written beside runs/
    assert run_folders(dash_runs) == []
    assert not [h for h in hits if not h[1].startswith(str(dash_runs.resolve()))], hits


@pytest.mark.parametrize("page", ["students", "class"])
@pytest.mark.parametrize("link", ["../outside", "runs/../../outside", "ABS", "../../../../etc",
                                  "demo/../../../outside"])
def test_deep_links_cannot_leave_the_runs_folder(dash_app, dash_runs, page, link):
    outside = copy_demo_run(dash_runs.parent, "original", name="outside")   # a real run, beside runs/
    if link == "ABS":
        link = str(outside)
    query = {"run": link, "student": "T0001", "data": str(outside / "config.json")}
    with watch_folder(outside) as hits:
        at = dash_app(page, query)
    no_exception(at)
    msg = " ".join(errors(at))
    assert f"Unknown run {link!r}" in msg, msg
    assert "Unknown data set" in msg, msg
    assert hits == [], hits                                    # not a single file of it was read
    shown = at.selectbox(key="stu_run" if page == "students" else "cls_run").value
    assert shown.startswith("demo/") and at.get("plotly_chart")
    assert at.query_params["run"] in (shown, [shown])          # the URL now names what is shown


def test_deep_link_with_unknown_student_and_data_names_both(dash_app):
    at = dash_app("students", {"run": "demo/demo-cumulative", "student": "../../etc/passwd",
                               "data": "/etc/passwd"})
    no_exception(at)
    msg = " ".join(errors(at))
    assert "Unknown student '../../etc/passwd'" in msg and "Unknown data set '/etc/passwd'" in msg


# ---- two runs at once, seen by a restarted dashboard -----------------------------------

def _runs_table(at) -> dict:
    df = at.dataframe[0].value
    return {r["run"]: r for r in df.to_dict("records")}


def test_two_runs_at_once_and_a_restarted_dashboard(dash_app, dash_runs):
    import streamlit as st
    from cmkt.runs import jobs
    kw = dict(data="sim:students=150,skills=5", epochs=3, name="twin",
              overrides={"d_model": "16", "n_heads": "2", "d_ff": "16", "max_len": "40", "num_threads": "1"})
    a = jobs.start_run(dash_runs, mode="original", **kw)
    b = jobs.start_run(dash_runs, mode="cumulative", **kw)
    assert a != b and {a.name, b.name} == {"twin", "twin-2"}
    try:
        at = dash_app("runs")                                  # the dashboard while they train
        no_exception(at)
        rows = _runs_table(at)
        for run, mode in ((a, "original"), (b, "cumulative")):
            assert rows[run.name]["mode"] == mode
            assert rows[run.name]["state"] in ("queued", "running", "finished"), rows[run.name]
        st.cache_data.clear()                                  # a restarted dashboard: nothing cached
        st.cache_resource.clear()
        at2 = dash_app("runs")
        no_exception(at2)
        rows = _runs_table(at2)
        assert all(rows[r.name]["state"] in ("queued", "running", "finished") for r in (a, b)), rows
        if any(rows[r.name]["state"] != "finished" for r in (a, b)):
            assert any("training" in i.value for i in at2.sidebar.info), [i.value for i in at2.sidebar.info]
        for run in (a, b):
            status = jobs.wait_for(run, timeout=240)
            assert status["state"] == "finished", (run / "log.txt").read_text()[-2000:]
    finally:
        for run in (a, b):
            jobs.cancel_run(run, wait=5)                       # never leave a process behind
    st.cache_data.clear()
    st.cache_resource.clear()
    at3 = dash_app("runs")
    no_exception(at3)
    assert errors(at3) == []
    rows = _runs_table(at3)
    ra, rb = rows[a.name], rows[b.name]
    assert ra["state"] == rb["state"] == "finished"
    assert (ra["mode"], rb["mode"]) == ("original", "cumulative")
    assert ra["epoch"] == rb["epoch"] == "3/3"
    assert rb["students with violation"] == 0
    # no clobbered files: each folder has its own config, whole JSON files and no temp file left
    for run, mode in ((a, "original"), (b, "cumulative")):
        assert json.loads((run / "config.json").read_text())["model"]["mode"] == mode
        assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    # both are pickable and scored on the other pages
    at4 = dash_app("students", {"run": f"runs/{b.name}"})
    no_exception(at4)
    assert at4.selectbox(key="stu_run").value == f"runs/{b.name}" and errors(at4) == []


# ---- where the server listens ----------------------------------------------------------

def test_config_listens_on_loopback_with_xsrf():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = cfg["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True
    assert server["fileWatcherType"] == "none"
    assert server.get("runOnSave", False) is False
    assert cfg.get("client", {}).get("showErrorDetails") in ("none", False)   # no tracebacks in the browser


def _listeners(port: int) -> list[str]:
    """Local addresses listening on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for f, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(f).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            addr, p = parts[1].split(":")
            if parts[3] == "0A" and int(p, 16) == port:           # 0A = LISTEN
                if width == 8:
                    out.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8))
                    out.append(socket.inet_ntop(socket.AF_INET6, raw))
    return out


def _non_loopback_ipv4() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))                     # UDP: sends nothing
            ip = s.getsockname()[0]
    except OSError:
        ip = None
    if not ip or ip.startswith("127.") or ip == "0.0.0.0":
        try:
            ip = next((i for i in socket.gethostbyname_ex(socket.gethostname())[2]
                       if not i.startswith("127.")), None)
        except OSError:
            ip = None
    return ip


def test_real_server_listens_on_loopback_only(tmp_path):
    """`streamlit run dashboard/app.py` with nothing but the port on the command line: the
    project's .streamlit/config.toml must keep it on 127.0.0.1 with XSRF protection on."""
    port = free_port()
    env = dict(os.environ, CMKT_RUNS_DIR=str(tmp_path / "runs"), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)],
                            cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.3)
        if Path("/proc/net/tcp").exists():
            assert _listeners(port) == ["127.0.0.1"], _listeners(port)
        ip = _non_loopback_ipv4()
        if ip is not None:
            with socket.socket() as s:
                s.settimeout(3)
                assert s.connect_ex((ip, port)) != 0, f"the dashboard is reachable on {ip}:{port}"
        # XSRF protection is on: an upload without the token is refused
        req = urllib.request.Request(f"{url}/_stcore/upload_file/some-session/some-file", data=b"x",
                                     method="PUT")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 403
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
