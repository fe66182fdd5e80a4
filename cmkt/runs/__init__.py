"""Run folders: the contract between the trainer and the dashboard (DESIGN.md).

folder.py     names, create, read (config.json, status.json, metrics.jsonl, results.json)
execute.py    train a prepared folder in this process
checkpoint.py the best weights (safetensors + JSON, loaded without executing code)
jobs.py       runs as background processes: launch, list, cancel, delete
torchrun.py   where a run trains, and `cmkt train` under torchrun; worker.py the other ranks
evaluate.py   score a checkpoint on data; export.py the per-step table
"""
from cmkt.runs.checkpoint import BEST
from cmkt.runs.execute import RunFolderCallbacks, execute_run, save_resume
from cmkt.runs.folder import (ACTIVE, CANCEL, CONFIG, LOG, METRICS, RESULTS, RESUME, STATES, STATUS,
                              RunError, check_run_name, create_run, new_run_name, now_iso, pid_alive,
                              proc_start_time, read_config, read_metrics, read_status, run_path)

__all__ = ["ACTIVE", "BEST", "CANCEL", "CONFIG", "LOG", "METRICS", "RESULTS", "RESUME", "STATES", "STATUS",
           "RunError", "RunFolderCallbacks", "check_run_name", "create_run", "execute_run", "new_run_name",
           "now_iso", "pid_alive", "proc_start_time", "read_config", "read_metrics", "read_status", "run_path",
           "save_resume"]
