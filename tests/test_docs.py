"""The docs a newcomer reads stay short and true: README leads with the two set-up commands,
RESULTS.md and README stay short, and every option of every config class has a row in
docs/MODEL.md's option table (and no row names an option that is gone)."""
import re
from dataclasses import fields
from pathlib import Path

from cmkt.baselines import BKTConfig, DKTConfig, PFAConfig
from cmkt.model import ModelConfig
from cmkt.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def option_rows() -> set[str]:
    text = (ROOT / "docs" / "MODEL.md").read_text()
    table = text.split("<!-- options:begin -->")[1].split("<!-- options:end -->")[0]
    names = set()
    for line in table.splitlines():
        m = re.match(r"^\| `([a-z_]+)`(?: \(([^)]*)\))? \|", line)
        if m:
            names.add(m.group(1))
    return names


def test_every_config_option_has_a_row_in_the_option_table_and_no_row_is_stale():
    options = set()
    for cls in (ModelConfig, TrainConfig, DKTConfig, BKTConfig, PFAConfig):
        options |= {f.name for f in fields(cls)}
    rows = option_rows()
    assert options - rows == set(), "options without a row in docs/MODEL.md"
    assert rows - options == set(), "rows in docs/MODEL.md for options that are gone"


def test_readme_leads_with_the_two_setup_commands_and_stays_short():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split()[:2] for line in block] == [["./run.sh", "app"], ["./run.sh", "test"]]
    assert len(text.splitlines()) <= 200


def test_results_stays_short_and_opens_with_the_headline_table():
    text = (ROOT / "docs" / "RESULTS.md").read_text()
    assert len(text.splitlines()) <= 300
    head = text.split("<!-- headline:begin -->")[1].split("<!-- headline:end -->")[0]
    assert head.count("\n|") >= 10 and "benchmarks/results.py" in text[:3000]


def test_every_experiment_entry_names_its_commit_and_is_indexed():
    folder = ROOT / "docs" / "experiments"
    index = (folder / "README.md").read_text()
    entries = sorted(p for p in folder.glob("20*.md"))
    assert entries
    for p in entries:
        assert re.search(r"at commit [0-9a-f]{7}", p.read_text()), p.name
        assert f"({p.name})" in index, p.name
