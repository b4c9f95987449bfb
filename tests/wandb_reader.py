"""Read back what a W&B offline run logged: its ``.wandb`` transaction log (LevelDB-log framing
of ``wandb_internal_pb2.Record`` messages), since offline runs keep history and summary only there."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
FILE_HEADER = struct.Struct("<4sHB")  # ":W&B", magic 0xBEE1, version
RECORD_HEADER = struct.Struct("<IHB")  # checksum, length, type (1 full, 2 first, 3 middle, 4 last)


def records(path: Path):
    data = Path(path).read_bytes()
    ident, magic, _ = FILE_HEADER.unpack_from(data, 0)
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B transaction log"
    pos, parts = FILE_HEADER.size, []
    while pos + RECORD_HEADER.size <= len(data):
        room = BLOCK - pos % BLOCK
        if room < RECORD_HEADER.size:
            pos += room
            continue
        _, length, kind = RECORD_HEADER.unpack_from(data, pos)
        pos += RECORD_HEADER.size
        if kind == 0 and length == 0:
            break
        parts.append(data[pos : pos + length])
        pos += length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(b"".join(parts))
            parts = []
            yield rec


def closed_records(log_file: Path, timeout: float = 30.0) -> list:
    """The records of a finished run's log: W&B's service may still be writing it when ``finish``
    returns on a loaded machine, so it is read until it holds the run's ``exit`` record."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(records(log_file))
        if any(rec.WhichOneof("record_type") == "exit" for rec in found):
            return found
        assert time.monotonic() < deadline, f"{log_file}: no exit record after {timeout:.0f} s (the run never finished)"
        time.sleep(0.2)


def logged(run_dir: Path) -> dict:
    """``{"history": [ {key: value} ...], "config": {...}, "summary": {...}, "run": {group, job_type, ...}}``
    of a finished run."""
    log_file = next(Path(run_dir).glob("*.wandb"))
    out: dict = {"history": [], "config": {}, "run": {}, "summary": {}}
    for rec in closed_records(log_file):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            out["history"].append(
                {(it.key or "/".join(it.nested_key)): json.loads(it.value_json) for it in rec.history.item}
            )
        elif kind == "config":
            for it in rec.config.update:
                out["config"][it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
        elif kind == "summary":
            for it in rec.summary.update:
                out["summary"][it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
        elif kind == "run":
            out["run"] = {"group": rec.run.run_group, "job_type": rec.run.job_type, "name": rec.run.display_name}
    return out
