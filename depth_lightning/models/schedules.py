"""Learning-rate schedules over optimiser steps (the paper's iterations, Sec. 3.4).

Each is configured as a Hydra ``_partial_`` and called with the optimizer; each returns a
``LambdaLR`` stepped once per optimiser step, with an optional linear warm-up.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _warmup(step: int, warmup_steps: int) -> float:
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def _multistep_factor(step: int, milestones: Sequence[int], gamma: float, warmup_steps: int) -> float:
    return _warmup(step, warmup_steps) * gamma ** sum(step >= m for m in milestones)


class CosineFactor:
    """The cosine's factor after ``step`` optimiser steps. ``total_steps`` may be set again while
    training (:class:`depth_lightning.run.budget.TimeBudget` does, as its estimate of the steps that fit
    in the time budget improves); it is saved with the scheduler, so a resumed run keeps it."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> None:
        self.total_steps, self.warmup_steps, self.min_lr_ratio = total_steps, warmup_steps, min_lr_ratio

    def __call__(self, step: int) -> float:
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return _warmup(step, self.warmup_steps) * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


def multistep(optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1, warmup_steps: int = 0) -> LambdaLR:
    """The base rate, times ``gamma`` after each milestone (the paper: /10 at 30k and 40k)."""
    if list(milestones) != sorted(milestones):
        raise ValueError(f"model.scheduler.milestones must be increasing, got {list(milestones)}")
    return LambdaLR(
        optimizer,
        functools.partial(_multistep_factor, milestones=list(milestones), gamma=gamma, warmup_steps=warmup_steps),
    )


def cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0) -> LambdaLR:
    """Half a cosine from the base rate down to ``min_lr_ratio`` of it at ``total_steps``."""
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(
            f"model.scheduler.total_steps must be an integer >= 1 (by default trainer.max_steps), got {total_steps!r}"
        )
    return LambdaLR(optimizer, CosineFactor(total_steps, warmup_steps, min_lr_ratio))


def constant(optimizer: Optimizer, warmup_steps: int = 0) -> LambdaLR:
    """The base rate throughout (after the warm-up)."""
    return LambdaLR(optimizer, functools.partial(_warmup, warmup_steps=warmup_steps))
