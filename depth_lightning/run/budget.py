"""Training for a budget of wall-clock time instead of a number of steps (``budget.mode=time``).

Machines differ several-fold (bf16 with AMX against float32 on AVX2), so a fixed number of steps is a
10-minute job on one and a cut-off 25-minute one on another. In time mode the run measures its own
speed while it trains and plans the number of optimiser steps that fit in the budget, validations
included; the learning-rate schedule is stretched to end exactly there, and the run stops with a
final validation. The plan and the speed it was made from are recorded in ``metrics.json``.
Experiments use ``budget.mode=steps``: the same number of steps on every machine, reproducible.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from depth_lightning.models.schedules import CosineFactor


class TimeBudget(L.Callback):
    """Plan the steps that fit in ``minutes`` of fitting (training and validations) and stop there.

    Every ``replan_every`` optimiser steps the plan is made again from the speed measured so far:
    training steps per second (validation time excluded) and the time of one validation, reserving
    what the validations still to come will take.
    """

    def __init__(self, minutes: float, replan_every: int = 10) -> None:
        if not minutes > 0:
            raise ValueError(f"budget.minutes must be > 0, got {minutes}")
        self.budget_s = 60.0 * minutes
        self.replan_every = replan_every
        self.planned_steps: int | None = None
        self.steps_per_s: float | None = None
        self._start = self._val_started = 0.0
        self._val_s: list[float] = []
        self._measured_from: tuple[float, int] | None = None  # (training seconds, step) after warm-up

    def state(self) -> dict[str, Any]:
        """What ``metrics.json`` records of the plan."""
        return {
            "mode": "time",
            "minutes": self.budget_s / 60,
            "planned_steps": self.planned_steps,
            "steps_per_s": self.steps_per_s,
            "validation_s": self._val_s[-1] if self._val_s else None,
        }

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_started = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_s.append(time.monotonic() - self._val_started)

    def _training_s(self) -> float:
        return time.monotonic() - self._start - sum(self._val_s)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if self._measured_from is None and step >= 2:  # the first steps are slower (warm-up)
            self._measured_from = (self._training_s(), step)
        if self._measured_from is not None and step % self.replan_every == 0 and step > self._measured_from[1]:
            self._plan(trainer, step)
        if self.planned_steps is not None and step >= self.planned_steps:
            trainer.should_stop = True  # Lightning validates once more before it stops

    def _plan(self, trainer: L.Trainer, step: int) -> None:
        t0, s0 = self._measured_from
        self.steps_per_s = (step - s0) / max(1e-9, self._training_s() - t0)
        per_val = max(self._val_s) if self._val_s else 0.0  # the sanity check's, until a real one ran
        steps_per_val = trainer.val_check_batch if trainer.val_check_batch != float("inf") else None
        per_step = 1.0 / self.steps_per_s
        if steps_per_val:  # validations to come cost time too (accumulation: batches per step)
            per_step += per_val / (steps_per_val / max(1, trainer.accumulate_grad_batches))
        remaining = self.budget_s - (time.monotonic() - self._start) - per_val  # the final validation
        planned = min(trainer.max_steps if trainer.max_steps > 0 else 10**9, step + max(0, int(remaining / per_step)))
        first = self.planned_steps is None
        self.planned_steps = max(step, planned)
        for config in trainer.lr_scheduler_configs:  # the schedule ends where the budget does
            scheduler = config.scheduler
            factors = getattr(scheduler, "lr_lambdas", [])
            for factor in factors:
                if isinstance(factor, CosineFactor):
                    factor.total_steps = self.planned_steps
            if any(isinstance(f, CosineFactor) for f in factors):
                # the rate of the current step follows the new plan too (Lightning may already have
                # stepped the scheduler for it; when the plan ends here, this is the end value)
                for group, base, factor in zip(
                    scheduler.optimizer.param_groups, scheduler.base_lrs, factors, strict=True
                ):
                    group["lr"] = base * factor(scheduler.last_epoch)
                scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
        if first and trainer.is_global_zero:
            print(
                f"time budget: this machine trains {self.steps_per_s:.2f} optimiser steps/s ({trainer.precision}); "
                f"{self.budget_s / 60:.1f} min -> about {self.planned_steps} steps (the schedule ends there)",
                flush=True,
            )
