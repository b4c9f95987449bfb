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


def _cosine_factor(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    progress = min(1.0, max(0.0, (step - warmup_steps) / max(1, total_steps - warmup_steps)))
    return _warmup(step, warmup_steps) * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


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
    if total_steps < 1:
        raise ValueError(f"model.scheduler.total_steps must be >= 1, got {total_steps}")
    return LambdaLR(
        optimizer,
        functools.partial(
            _cosine_factor, total_steps=total_steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio
        ),
    )


def constant(optimizer: Optimizer, warmup_steps: int = 0) -> LambdaLR:
    """The base rate throughout (after the warm-up)."""
    return LambdaLR(optimizer, functools.partial(_warmup, warmup_steps=warmup_steps))
