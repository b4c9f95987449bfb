"""A run's folder: one run at a time in it, no debris of interrupted writes, and the way back to it."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from depth_lightning.run.errors import RunFolderBusy

LOCK_NAME = ".run.lock"
RESULTS_FILE = "metrics.json"  # the run's record (depth_lightning.run.record)


def is_first_process() -> bool:
    """True in the process that owns the run folder: not a DDP rank Lightning or SLURM started."""
    return all(os.environ.get(k, "0") == "0" for k in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


class RunLock:
    """An exclusive lock on ``folder`` for the life of the run (``flock``: released by the kernel
    when the process ends, however it ends, so a killed run never leaves the folder locked)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._file = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+")  # noqa: SIM115 - held open for the life of the run
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunFolderBusy(
                f"{self.path.parent} is in use by a run still going ({holder}); give this run its own folder "
                "(leave hydra.run.dir out), or wait for that run to end"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def remove_debris(folder: str | Path) -> list[Path]:
    """Temporary files of writes a killed run left behind (``.<name>.tmp<suffix>``, see
    :func:`depth_lightning.run.files.save_atomic`); call it only while holding the folder's lock."""
    removed = [p for p in Path(folder).rglob(".*.tmp*") if p.is_file()]
    for p in removed:
        p.unlink()
    return removed


def newest_resumable_run(runs: str | Path) -> Path | None:
    """The most recent run folder under ``runs`` with a ``checkpoints/last.ckpt`` (names sort by time)."""
    found = sorted(p.parent.parent for p in Path(runs).glob("*/checkpoints/last.ckpt"))
    return found[-1] if found else None


def wandb_run_id(folder: str | Path) -> str | None:
    """The id of the W&B run a run folder logged to (``wandb/<offline-run|run>-<time>-<id>``)."""
    runs = sorted(Path(folder).glob("wandb/*run-*-*"))
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def read_status(folder: str | Path, status: str) -> dict[str, Any] | None:
    """The run's ``metrics.json`` if it says ``status``; None otherwise (absent, unreadable, other)."""
    try:
        results = json.loads((Path(folder) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) and results.get("status") == status else None


def fix_run_time() -> None:
    """One time stamp for the run or sweep folder, fixed before Hydra starts and inherited by every
    process Lightning re-executes (DDP ranks), so all of them resolve the same folder."""
    os.environ.setdefault("DEPTH_LIGHTNING_RUN_TIME", datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
