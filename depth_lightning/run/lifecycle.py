"""One training run from start to finish: :class:`RunLifecycle`.

It owns what keeps a run safe, on time and truthful, and says what each measured:

- the folder: locked for the run's life (one run per folder; a finished run is never started afresh
  over), debris of interrupted writes removed, a sweep job that completed before not run again;
- the record, ``metrics.json``, true at every moment: ``running`` from the start, then ``completed``,
  ``interrupted`` (a signal stopped it after writing ``last.ckpt``; the exit is non-zero) or ``failed``
  (with the error, configuration errors included);
- its callbacks: a checkpoint on SIGTERM/SIGUSR1, the non-finite guard, the time budget
  (``budget.mode=time``) and the training-health check (``health``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from depth_lightning.callbacks.health import TrainingHealth
from depth_lightning.core.config import check_choice, plain
from depth_lightning.core.errors import RunInterrupted
from depth_lightning.core.files import write_json
from depth_lightning.run.budget import TimeBudget
from depth_lightning.run.faults import CheckpointOnSignal, NonFiniteGuard
from depth_lightning.run.folder import RESULTS_FILE, is_first_process, lock_for_run, read_status, remove_debris
from depth_lightning.run.log import apply_extras, log_failure, route_library_logs, where_outputs_are
from depth_lightning.run.machine import describe_machine

log = logging.getLogger(__name__)


def interrupted_message(interrupted: dict[str, Any], out_dir: Path) -> str:
    return (
        f"{interrupted['signal']} at optimiser step {interrupted['step']}: {out_dir / 'checkpoints' / 'last.ckpt'} "
        f"written; resume with ckpt_path=last hydra.run.dir={out_dir}"
    )


def finish_wandb() -> None:
    """Close the W&B run (if a logger started one), so that the next job of a multirun starts its own."""
    wandb = sys.modules.get("wandb")  # only if a logger imported it
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


class RunLifecycle:
    """The life of the run ``cfg`` describes, in its folder ``cfg.paths.output_dir``. Only the process
    that owns the folder locks and writes it; DDP ranks started for it keep their record in memory.

    Use: ``with lifecycle.started():`` (lock), then :meth:`completed_before`, then ``with
    lifecycle.recorded():`` around building and running, giving the trainer :meth:`callbacks`, then
    :meth:`measured` after the fit and :meth:`finish` with the results.
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, self.folder = cfg, Path(cfg.paths.output_dir)
        self.first = is_first_process()  # not a DDP rank started for this run
        self.header = {"config": plain(cfg), "machine": describe_machine()}
        self.signals = CheckpointOnSignal(self.folder / "checkpoints")
        self.guard: NonFiniteGuard | None = None  # these three are built inside the record: a bad setting is
        self.budget: TimeBudget | None = None  # recorded as the run's failure
        self.health: TrainingHealth | None = None

    def callbacks(self) -> list[L.Callback]:
        """The lifecycle's callbacks, built from ``nonfinite``, ``budget`` and ``health``; the guard first:
        it checks every optimiser step before anything can write a checkpoint of it."""
        cfg = self.cfg
        self.guard = NonFiniteGuard(cfg.get("nonfinite", "stop"))
        budget = cfg.get("budget") or {"mode": "steps"}
        check_choice(budget.get("mode"), "budget.mode", ("steps", "time"))
        self.budget = TimeBudget(budget["minutes"]) if budget["mode"] == "time" else None
        self.health = TrainingHealth(**cfg.health) if cfg.get("health") else None
        return [c for c in (self.guard, self.signals, self.budget, self.health) if c is not None]

    @contextmanager
    def started(self) -> Iterator[None]:
        """The folder locked for the run (refused before anything is written when it holds a run that
        ``ckpt_path`` does not continue) and cleared of debris; released however the run ends, and its
        W&B run closed, so that the next job of a multirun starts its own. Lightning's and the libraries'
        messages go to the run's log (``train.log``) from here on."""
        route_library_logs()
        lock = lock_for_run(self.folder, self.cfg.get("ckpt_path")) if self.first else None
        if lock is not None:
            for debris in remove_debris(self.folder):
                log.info("removed %s, left by an interrupted write", debris)
        try:
            yield
        finally:
            finish_wandb()
            if lock is not None:
                lock.release()

    def completed_before(self) -> dict[str, Any] | None:
        """A sweep resumed into its folder (``ckpt_path=last``): the record of this job if it finished
        before; its results stand as they are."""
        if self.cfg.get("ckpt_path") != "last" or (done := read_status(self.folder, "completed")) is None:
            return None
        log.info("%s: completed before (ckpt_path=last); not trained or tested again", self.folder)
        return done

    @contextmanager
    def recorded(self) -> Iterator[None]:
        """``running`` inside; a failure is recorded as ``failed`` (or ``interrupted`` when a signal caused
        it) with its reason and traceback (``train.log``), then raised."""
        self._save({"status": "running"})
        if self.first:
            apply_extras(self.cfg, self.folder)
        try:
            yield
        except BaseException as err:
            log_failure(err)
            stopped = self.signals.interrupted
            status = {"status": "interrupted", "interrupted": stopped} if stopped else {"status": "failed"}
            self._save({**status, "error": repr(err)[:2000]})
            if stopped:  # Lightning ends a run on SIGTERM with sys.exit(0): the scheduler must see a failure
                raise RunInterrupted(interrupted_message(stopped, self.folder)) from err
            raise

    def measured(self, trainer: L.Trainer) -> dict[str, Any]:
        """What the lifecycle's callbacks found during the fit, for ``metrics.json``."""
        found: dict[str, Any] = {
            "budget": self.budget.state() if self.budget else {"mode": "steps", "max_steps": trainer.max_steps}
        }
        if self.health is not None:
            found["health"] = self.health.state()
        if self.guard is not None and self.guard.skipped_steps:
            found["skipped_steps"] = self.guard.skipped_steps
            log.warning(
                "nonfinite=skip: %d of %d optimiser steps were skipped (non-finite loss or gradients)",
                self.guard.skipped_steps,
                trainer.global_step,
            )
        if self.signals.interrupted:
            found["interrupted"] = self.signals.interrupted
        return found

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        """Record ``results`` as ``completed`` (and say where the outputs are), or as ``interrupted`` and
        raise :class:`RunInterrupted`."""
        stopped = self.signals.interrupted
        if stopped:
            self._save({**results, "status": "interrupted", "interrupted": stopped})
            raise RunInterrupted(interrupted_message(stopped, self.folder))
        done = self._save({**results, "status": "completed"})
        if self.first:
            log.info(where_outputs_are(self.folder, done.get("best_checkpoint")))
        return done

    def _save(self, data: dict[str, Any]) -> dict[str, Any]:
        data = {**self.header, **data}
        if self.first:
            write_json(self.folder / RESULTS_FILE, data)
        return data
