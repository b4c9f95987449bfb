"""A validation split held out of the training list by scene, so that model selection never sees the
test set and validation frames never share a scene with training frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from depth_lightning.core.errors import ConfigError


@dataclass(frozen=True)
class HoldOut:
    """Which part of a training list a dataset keeps.

    Args:
        role: ``train`` keeps the frames of the scenes not held out, ``val`` those of the held-out scenes.
        fraction: share of the list's scenes held out (at least one, and never all of them).
        seed: the held-out scenes are a pure function of the seed and the list's scenes.
        max_frames: validation keeps at most this many frames, evenly spaced over the held-out ones
            (training never uses any frame of a held-out scene either way).
    """

    role: str
    fraction: float = 0.05
    seed: int = 0
    max_frames: int | None = None

    def held_out_scenes(self, scenes: Sequence[str]) -> list[str]:
        unique = sorted(set(scenes))
        if len(unique) < 2:
            raise ConfigError(
                f"cannot hold out a validation scene: the training list has {len(unique)} scene(s) "
                f"({', '.join(unique) or 'none'}); give data.dataset.val_list, a list of frames from other scenes"
            )
        count = min(len(unique) - 1, max(1, math.ceil(self.fraction * len(unique))))
        order = np.random.default_rng(self.seed).permutation(len(unique))
        return sorted(unique[i] for i in order[:count])

    def select(self, scenes: Sequence[str]) -> list[int]:
        """Indices (into the list) of the frames this role keeps; ``scenes[i]`` is frame i's scene."""
        held = set(self.held_out_scenes(scenes))
        keep = [i for i, s in enumerate(scenes) if (s in held) == (self.role == "val")]
        if self.role == "val" and self.max_frames is not None and len(keep) > self.max_frames:
            keep = [keep[int(j)] for j in np.linspace(0, len(keep) - 1, self.max_frames).round()]
        return keep
