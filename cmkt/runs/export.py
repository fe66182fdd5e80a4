"""Streaming export: every student's per-step trajectory written chunk by chunk, so memory is
bounded by the chunk (the scored arrays of `chunk` students), not by the data set.

    python -m cmkt export RUN --data D --all --out FILE.parquet   (or FILE.csv)

Columns are those of `cmkt export` (cmkt.runs.evaluate.trajectory_frame). Parquet goes through
pyarrow's ParquetWriter (one row group per chunk), CSV through pyarrow's CSVWriter; the file
appears (atomically) only once complete.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from cmkt.data.columnar import is_parquet_name

CHUNK_STUDENTS = 2048


def export_all(checkpoint, data: str, split: str | None, out, chunk_students: int = CHUNK_STUDENTS,
               device="cpu", progress=None) -> dict:
    """Score every student of data (split) with checkpoint and write the trajectories to out.
    Returns {"rows", "students", "chunks"}."""
    from cmkt.runs.checkpoint import load_checkpoint
    from cmkt.runs.evaluate import Scored, eval_data_for, trajectory_frame
    from cmkt.analysis.scoring import score
    model, meta = load_checkpoint(checkpoint, device)
    ds = eval_data_for(meta, data, split)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    writer, rows, chunks = None, 0, 0
    parquet = is_parquet_name(out)
    try:
        for lo in range(0, len(ds), max(1, int(chunk_students))):
            sub = ds.subset(range(lo, min(lo + chunk_students, len(ds))))
            traj = score(model, sub, device)
            frame = trajectory_frame(Scored(traj, sub, meta, list(ds.skill_labels), list(ds.skill_names)))
            table = pa.Table.from_pandas(frame, preserve_index=False)
            del traj, frame
            if writer is None:
                if parquet:
                    import pyarrow.parquet as pq
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                else:
                    import pyarrow.csv as pcsv
                    writer = pcsv.CSVWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema) if parquet else table)
            rows += table.num_rows
            chunks += 1
            if progress:
                progress(min(lo + chunk_students, len(ds)), len(ds))
        if writer is None:                       # no students: an empty file with the header
            frame = trajectory_frame(Scored(score(model, ds, device), ds, meta, list(ds.skill_labels),
                                            list(ds.skill_names)))
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if parquet:
                import pyarrow.parquet as pq
                pq.write_table(table, tmp)
            else:
                table.to_pandas().to_csv(tmp, index=False)
        else:
            writer.close()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, out)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return {"rows": rows, "students": len(ds), "chunks": chunks}
