"""A run's folder: one run at a time in it, no debris of interrupted writes, and the way back to it."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from depth_lightning.core.errors import USER_ERRORS, ConfigError, RunFolderBusy, RunFolderUsed, exit_with_one_line

LOCK_NAME = ".run.lock"
RESULTS_FILE = "metrics.json"  # the run's record (depth_lightning.run.lifecycle)
_GUARDED: dict[Path, RunLock] = {}  # locks GuardRunFolder took for this process's run, by folder


def is_first_process() -> bool:
    """True in the process that owns the run folder: not a DDP rank Lightning or SLURM started."""
    return all(os.environ.get(k, "0") == "0" for k in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


class RunLock:
    """An exclusive lock on ``folder`` for the life of the run (``flock``: released by the kernel
    when the process ends, however it ends, so a killed run never leaves the folder locked)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._file = None

    def acquire(self, check: Callable[[], None] | None = None) -> None:
        """Take the lock, then run ``check`` (which may refuse the folder) before writing anything: a
        refused run leaves the folder byte-identical."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+")  # noqa: SIM115 - held open for the life of the run
        except OSError as err:
            raise ConfigError(
                f"config error: the run folder {self.path.parent} cannot be written ({err.strerror}): it is chosen by "
                "hydra.run.dir (or hydra.sweep.dir), under paths.log_dir, which the environment variable "
                "DEPTH_LIGHTNING_LOGS sets; point them at a folder you can write"
            ) from None
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            self._file = None
            raise RunFolderBusy(
                f"{self.path.parent} is in use by a run still going ({holder}); give this run its own folder "
                "(leave hydra.run.dir out), or wait for that run to end"
            ) from None
        try:
            if check is not None:
                check()
        except BaseException:
            self.release()
            raise
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def refuse_used_folder(folder: str | Path, ckpt_path: Any, key: str = "hydra.run.dir") -> None:
    """A folder that holds a run's record is never started afresh: it is continued (``ckpt_path``) or
    left as it is. ``key`` is the setting that chose the folder."""
    record = Path(folder) / RESULTS_FILE
    if ckpt_path is None and record.exists():
        try:
            status = json.loads(record.read_text()).get("status", "unknown")
        except (OSError, ValueError, AttributeError):
            status = "unreadable"
        raise RunFolderUsed(
            f"{folder} holds a run already (its {RESULTS_FILE} says status {status!r}); nothing was written. "
            f"Give this run its own folder (leave {key} out), or continue that run with ckpt_path=last"
        )


class GuardRunFolder(Callback):
    """Hydra callback of the main job: the run folder locked and checked before Hydra writes its
    ``.hydra/`` files and log there (Hydra calls ``on_run_start`` before it touches the folder)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not is_first_process():
            return  # a DDP rank of a run whose first process holds the folder
        folder = Path(config.hydra.run.dir)
        lock = RunLock(folder)
        _exit_on_user_error(lambda: lock.acquire(check=lambda: refuse_used_folder(folder, config.get("ckpt_path"))))
        _GUARDED[folder.resolve()] = lock

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        used = sorted(sweep.glob(f"*/{RESULTS_FILE}"))
        if config.get("ckpt_path") is None and used:
            _exit_on_user_error(lambda: refuse_used_folder(used[0].parent, None, "hydra.sweep.dir"))


def lock_for_run(folder: str | Path, ckpt_path: Any) -> RunLock:
    """The run's lock on ``folder``: the one GuardRunFolder took before Hydra started the run, or taken
    now (a run started in a process: tests, notebooks), refusing a folder that holds a run."""
    lock = _GUARDED.pop(Path(folder).resolve(), None)
    if lock is None:
        lock = RunLock(folder)
        lock.acquire(check=lambda: refuse_used_folder(folder, ckpt_path))
    return lock


def _exit_on_user_error(step: Callable[[], None]) -> None:
    """Hydra's callbacks run outside the task function's ``one_line_errors``: the same one line, exit 2."""
    try:
        step()
    except USER_ERRORS as err:
        exit_with_one_line(err)


def remove_debris(folder: str | Path) -> list[Path]:
    """Temporary files of writes a killed run left behind (``.<name>.tmp<suffix>``, see
    :func:`depth_lightning.core.files.save_atomic`); call it only while holding the folder's lock."""
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
