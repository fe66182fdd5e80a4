"""The library stands alone: importable without streamlit, runnable as python -m cmkt and `cmkt`."""
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_library_never_imports_streamlit():
    code = ("import sys, cmkt, cmkt.cli, cmkt.jobs, cmkt.runs, cmkt.evaluate, cmkt.trainer, cmkt.sim, "
            "cmkt.data, cmkt.metrics, cmkt.checkpoint; assert 'streamlit' not in sys.modules, 'streamlit imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_console_script_and_module_entry():
    out = subprocess.run([sys.executable, "-m", "cmkt", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("simulate", "train", "validate", "compare", "export"):
        assert cmd in out.stdout
    exe = Path(sys.executable).parent / "cmkt"
    if exe.exists() or shutil.which("cmkt"):
        out = subprocess.run([str(exe if exe.exists() else "cmkt"), "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "train" in out.stdout


def test_simulate_command_writes_long_csv(tmp_path):
    out = tmp_path / "sim.csv"
    subprocess.run([sys.executable, "-m", "cmkt", "simulate", "--students", "12", "--skills", "4", "--seed", "2",
                    "--out", str(out)], check=True, capture_output=True, cwd=REPO)
    header = out.read_text().splitlines()[0]
    assert header == "student_id,order,skill_id,skill_name,correct,true_mastery"
    again = tmp_path / "again.csv"
    subprocess.run([sys.executable, "-m", "cmkt", "simulate", "--students", "12", "--skills", "4", "--seed", "2",
                    "--out", str(again)], check=True, capture_output=True, cwd=REPO)
    assert out.read_bytes() == again.read_bytes()
