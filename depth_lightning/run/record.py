"""A run's ``metrics.json``: what it is, on what machine, how it ended, and every final number.

It tells the truth at every moment: ``running`` from the start, then ``completed`` (the schedule
ended), ``interrupted`` (a signal stopped it after writing ``last.ckpt``; the exit is non-zero) or
``failed`` (with the error, configuration errors included).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from depth_lightning.core.config import plain
from depth_lightning.core.errors import RunInterrupted
from depth_lightning.core.files import write_json
from depth_lightning.run.folder import RESULTS_FILE
from depth_lightning.run.log import log_failure
from depth_lightning.run.machine import describe_machine


def interrupted_message(interrupted: dict[str, Any], out_dir: Path) -> str:
    return (
        f"{interrupted['signal']} at optimiser step {interrupted['step']}: {out_dir / 'checkpoints' / 'last.ckpt'} "
        f"written; resume with ckpt_path=last hydra.run.dir={out_dir}"
    )


class RunRecord:
    """The ``metrics.json`` of the run in ``folder``; only the process that owns the folder writes it
    (``write``), DDP ranks started for it keep their record in memory."""

    def __init__(self, folder: Path, cfg: DictConfig, write: bool = True) -> None:
        self.path, self.write = Path(folder) / RESULTS_FILE, write
        self.header = {"config": plain(cfg), "machine": describe_machine()}
        self.signals: Any = None  # the CheckpointOnSignal callback, once built: did a signal stop the run?

    def _save(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.write:
            write_json(self.path, data)
        return data

    def interrupted(self) -> dict[str, Any] | None:
        return getattr(self.signals, "interrupted", None)

    @contextmanager
    def running(self) -> Iterator[None]:
        """``running`` inside; a failure is recorded as ``failed`` (or ``interrupted`` when a signal
        caused it) with its reason and traceback (``train.log``), then raised."""
        self._save({**self.header, "status": "running"})
        try:
            yield
        except BaseException as err:
            log_failure(err)
            stopped = self.interrupted()
            status = {"status": "interrupted", "interrupted": stopped} if stopped else {"status": "failed"}
            self._save({**self.header, **status, "error": repr(err)[:2000]})
            if stopped:  # Lightning ends a run on SIGTERM with sys.exit(0): the scheduler must see a failure
                raise RunInterrupted(interrupted_message(stopped, self.path.parent)) from err
            raise

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        """Record ``results`` as ``completed``, or as ``interrupted`` and raise :class:`RunInterrupted`."""
        stopped = self.interrupted()
        if stopped:
            self._save({**self.header, **results, "status": "interrupted", "interrupted": stopped})
            raise RunInterrupted(interrupted_message(stopped, self.path.parent))
        return self._save({**self.header, **results, "status": "completed"})
