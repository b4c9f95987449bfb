"""The embedded default data: procedural RGB-D scenes (``data/render.py``), a dataset like NYU and KITTI."""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_lightning.core.errors import ConfigError
from depth_lightning.data.frames import FrameDataset
from depth_lightning.data.render import RENDERERS

# Each split renders from its own seeds: no validation or test scene is ever a training scene.
SPLIT_SEED_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_003}


class SyntheticScenes(FrameDataset):
    """Frame ``i`` of a split is a pure function of ``(split, i)``, and of ``seed`` for training frames,
    rendered at the input size.

    Args:
        scene: ``indoor`` (rooms, NYU-like intrinsics) or ``outdoor`` (streets, KITTI-like, sky invalid).
        train_length, val_length, test_length: frames per split.
        cache: keep rendered frames in each worker's memory (persistent workers re-read them).
        **kw: :class:`FrameDataset`'s arguments. The splits are disjoint by seed, so validation is
            not held out of the training frames.
    """

    def __init__(
        self,
        scene: str = "indoor",
        train_length: int = 2000,
        val_length: int = 64,
        test_length: int = 64,
        cache: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if scene not in RENDERERS:
            raise ConfigError(f"data.dataset.scene={scene!r} is unknown; allowed: {', '.join(RENDERERS)}")
        self.length = {"train": train_length, "val": val_length, "test": test_length}[self.split]
        if self.length < 1:
            raise ConfigError(f"data.dataset.{self.split}_length must be >= 1, got {self.length}")
        self.scene, self.cache = scene, cache
        # Validation and test are fixed sets, like a real dataset's lists: runs of different seeds are
        # scored on the same images (paired comparisons); training frames vary with the seed.
        self.render_seed = (self.seed if self.train else 0) + SPLIT_SEED_OFFSETS[self.split]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.length

    def describe(self, index: int) -> str:
        return f"synthetic {self.scene} frame {index} of the {self.split} split"

    def source(self) -> dict[str, Any]:
        return {
            "list": {"rendered": f"{self.length} {self.scene} frames, render seed {self.render_seed}"},
            "ground_truth": "rendered depth, exact (sky invalid outdoors)",
        }

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self._cache:
            return self._cache[index]
        h, w = self.input_size
        frame = RENDERERS[self.scene](np.random.default_rng([self.render_seed, index]), h, w)
        if self.cache:
            self._cache[index] = frame
        return frame
