"""The paper's augmentation (Sec. 3.3) with albumentations; RGB and depth transformed together.

Depth is a mask target: nearest-neighbour, border filled with 0 (invalid), so it is never
interpolated across holes. Colour: each channel x U[0.9, 1.1]. Scale: s ~ U[1.3, 1.5] about the
centre (a centre crop of the scaled frame), depth divided by s (Eigen et al.'s convention).
Horizontal flip. Rotation U[-5, 5] degrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np


class PaperAugmentation:
    """Callable ``(rgb uint8 HxWx3, depth float32 HxW) -> (rgb, depth)``.

    Args:
        color: each channel x U[lo, hi], or None.
        scale: s ~ U[lo, hi] about the centre, or None.
        flip: horizontal flip with probability 1/2.
        rotate: U[-rotate, rotate] degrees, or None.
        divide_depth_by_scale: depth / s after scaling (Eigen et al.'s convention).
    """

    def __init__(
        self,
        color: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        flip: bool = False,
        rotate: float | None = None,
        divide_depth_by_scale: bool = True,
        seed: int | None = None,
    ) -> None:
        self.divide = bool(divide_depth_by_scale)
        ops: list[A.BasicTransform] = []
        if flip:
            ops.append(A.HorizontalFlip(p=0.5))
        if scale is not None or rotate is not None:
            ops.append(
                A.Affine(
                    scale=tuple(scale) if scale is not None else (1.0, 1.0),
                    rotate=(-float(rotate), float(rotate)) if rotate is not None else 0.0,
                    keep_ratio=True,
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_NEAREST,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    fill_mask=0,
                    p=1.0,
                )
            )
        if color is not None:
            ops.append(A.MultiplicativeNoise(multiplier=tuple(color), per_channel=True, elementwise=False, p=1.0))
        self.transform = A.Compose(ops, seed=seed, save_applied_params=True)

    def set_seed(self, seed: int) -> None:
        """Reseed (called in each DataLoader worker, from the worker's torch seed)."""
        self.transform.set_random_seed(seed)

    def __call__(self, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.transform(image=rgb, mask=depth)
        depth = out["mask"]
        if self.divide:
            for name, params in out["applied_transforms"]:
                if name == "Affine":
                    depth = depth / np.float32(params["scale"]["x"])
        return out["image"], depth.astype(np.float32)
