"""The library stands alone: importable without streamlit, runnable as python -m cmkt and `cmkt`."""
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_library_never_imports_streamlit():
    code = ("import sys, cmkt, cmkt.cli, cmkt.runs.jobs, cmkt.runs, cmkt.runs.evaluate, cmkt.train.trainer, cmkt.data.sim, "
            "cmkt.data, cmkt.analysis.metrics, cmkt.runs.checkpoint; assert 'streamlit' not in sys.modules, 'streamlit imported'")
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


def test_ci_runs_readme_test_command_then_portable_kernels():
    """CI runs README's test command, then the model/scoring/metric tests again on PyTorch's
    portable CPU kernels, and fails when either fails (set -e)."""
    ci = (REPO / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert "set -euo pipefail" in lines
    test_cmd = next(k for k, ln in enumerate(lines) if ln.startswith("./run.sh test"))
    portable = next(k for k, ln in enumerate(lines) if ln.startswith("ATEN_CPU_CAPABILITY=default "))
    assert portable > test_cmd
    for f in ("tests/test_metrics.py", "tests/test_model.py"):
        assert f in lines[portable] and (REPO / f).exists()
