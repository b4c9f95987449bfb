"""Shared pipeline of the real datasets: fixed crop box, augmentation, resize, bad-sample policy."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from depth_lightning.data.io import DataError
from depth_lightning.data.splits import HoldOut
from depth_lightning.data.transforms import PaperAugmentation
from depth_lightning.protocol import EvalProtocol

log = logging.getLogger(__name__)


class FrameDataset(Dataset, ABC):
    """Base class: subclasses implement ``__len__``, ``load(i) -> (rgb uint8, depth float32 metres)``,
    ``describe(i)`` (the files of sample ``i``, for error messages) and, to hold out validation
    scenes, ``scenes()`` and ``subset(keep)``.

    Items: ``image`` (3,h,w) in [0,1] at the input size; ``depth``: at the input size for training,
    at the frame's native (cropped) resolution for evaluation, with ``eval_mask``, the protocol's
    region of that frame; ``index``.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        train: bool,
        augment: Any | None = None,
        skip_bad_samples: bool = False,
        seed: int = 0,
        protocol: EvalProtocol | None = None,
    ) -> None:
        self.input_size = tuple(input_size)
        self.train, self.seed = train, seed
        self.augment = PaperAugmentation(augment) if (train and augment is not None) else None
        self.skip_bad_samples = skip_bad_samples
        self.protocol = protocol or EvalProtocol()
        self.held_out_scenes: list[str] = []

    # -- to implement
    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 (H,W,3) and depth float32 metres (H,W) of sample ``index``, 0 = invalid."""

    def describe(self, index: int) -> str:
        return f"sample {index}"

    def crop_box(self, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """``(top, bottom, left, right)`` applied to RGB and depth before anything else."""
        return None

    @abstractmethod
    def scenes(self) -> list[str]:
        """The scene (or drive) of each sample, for a scene-disjoint validation split."""

    @abstractmethod
    def subset(self, keep: list[int]) -> None:
        """Keep only the samples at ``keep``."""

    def hold_out(self, hold: HoldOut | None) -> None:
        """Keep the part of the list ``hold`` assigns to this split (all of it when ``hold`` is None)."""
        if hold is None:
            return
        scenes = self.scenes()
        self.held_out_scenes = hold.held_out_scenes(scenes)
        self.subset(hold.select(scenes))

    # -- the pipeline
    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """``key``: an index, or ``(epoch, index)`` from :class:`EpochSampler`."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        try:
            rgb, depth = self.load(index)
            if rgb.shape[:2] != depth.shape[:2]:
                raise DataError(
                    f"{self.describe(index)}: RGB {rgb.shape[:2]} and depth {depth.shape[:2]} differ in size"
                )
        except DataError as err:
            if self.skip_bad_samples:
                log.warning("skipping bad sample: %s", err)
                return None
            raise
        original = depth.shape[:2]
        box = self.crop_box(original)
        if box is not None:
            t, b, left, r = box
            rgb, depth = rgb[t:b, left:r], depth[t:b, left:r]
        h, w = self.input_size
        image = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        item: dict[str, Any] = {"index": index}
        if self.train:
            depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
            if self.augment is not None:
                # Augmentation as a pure function of (seed, epoch, index): reproducible, resumable.
                self.augment.set_seed(int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]))
                image, depth = self.augment(image, depth)
        else:
            item["eval_mask"] = torch.from_numpy(np.array(self.protocol.mask(original, box)))  # a writable copy
        item["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)
        item["depth"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
        return item


def collate_skipping_bad(batch: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Default collation of the good samples; ``skipped`` counts the bad ones (``skip_bad_samples``)."""
    good = [b for b in batch if b is not None]
    sizes = {tuple(b["depth"].shape) for b in good}
    if len(sizes) > 1:  # evaluation ground truth is at each frame's own size
        raise DataError(
            f"frames of {len(sizes)} sizes in one evaluation batch ({', '.join('x'.join(map(str, s)) for s in sizes)} "
            f"at indices {[b['index'] for b in good]}): set data.eval_batch_size=1, or data.frame_size=[h, w] to cut "
            "every frame to one size"
        )
    out = default_collate(good) if good else {}
    out["skipped"] = torch.tensor(len(batch) - len(good))
    return out
