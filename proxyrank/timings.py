"""Wall times and throughput, kept where no DVC output sees them.

A cached output must hold only what its inputs determine: then the same study run twice, or on
two machines, gives the same dvc.lock and pushes the same objects to a shared remote. Wall time,
tokens/s, TFLOP/s, MFU and the step a killed run resumed from are none of that, so they go to
data/timings/<stage>.jsonl instead: one JSON line per finished stage or training run, appended and
never rewritten. The folder is git-ignored (data/*) and declared in no stage of dvc.yaml, not even
as an uncached output (an output with `cache: false` turns off its stage's run-cache). Readers:
bench/study_wall.py (the stage table), ladder.py (a rung's training hours), bench/gpu_check.py.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

TIMINGS = Path("data") / "timings"


def stage_file(stage: str, folder: Path = TIMINGS) -> Path:
    """The timing file of one DVC stage (`proxies@mix-natural`, `alignment`, ...)."""
    return folder / f"{stage}.jsonl"


def append(path: Path, record: dict) -> None:
    """Add `record` (stamped with its stage, the file's name, and the UTC time) as one line.

    The line goes out in a single write() to a file opened with O_APPEND, so lines that forked
    workers or stages side by side (the `gpus` runner) append never interleave. A kill can leave at
    most a partial last line: the next line starts on a line of its own, and `read` skips it."""
    line = {"stage": path.name.removesuffix(".jsonl"), **record,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        cut = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        os.write(fd, (("\n" if cut else "") + json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def read(folder: Path) -> list[dict]:
    """Every complete line of every timing file in `folder`, oldest first within each file
    (files in name order); none if the folder does not exist."""
    records = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def latest(records: list[dict], kind: str, key: str) -> dict[str, dict]:
    """The last record of `kind` for each value of `key` (a stage rerun or a run trained again
    replaces the earlier measurement)."""
    return {r[key]: r for r in records if r.get("kind") == kind and key in r}
