"""The paper's augmentation (Sec. 3.3): parameters drawn once per sample, applied on the host (one
sample, OpenCV) or on the accelerator (the whole batch, torch) with the same float arithmetic.

Order: horizontal flip; scale s ~ U[lo, hi] and rotation ~ U[-r, r] degrees about the frame's centre,
the frame's size kept (the centre crop of the scaled frame), RGB bilinear, depth nearest-neighbour
with 0 (invalid) outside the frame, so depth is never interpolated across holes, and divided by s
(Eigen et al.'s convention); each colour channel x U[lo, hi], clipped to [0, 1].

Both paths draw the parameters with :meth:`PaperAugmentation.draw`, so ``data.augment_on=device``
trains on the samples ``data.augment_on=host`` would (within 1e-5 on RGB in [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

AUGMENT_ON = ("host", "device")


class PaperAugmentation:
    """Callable ``(rgb HxWx3 uint8 or float in [0, 1], depth float32 HxW) -> (rgb float32 in [0, 1], depth)``.

    Args:
        color: each channel x U[lo, hi], or None.
        scale: s ~ U[lo, hi] about the centre, or None.
        flip: horizontal flip with probability 1/2.
        rotate: U[-rotate, rotate] degrees, or None.
        divide_depth_by_scale: depth / s after scaling (Eigen et al.'s convention).
        seed: of the generator :meth:`draw` uses (datasets reseed it per sample).
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
        self.color = tuple(map(float, color)) if color is not None else None
        self.scale = tuple(map(float, scale)) if scale is not None else None
        self.flip, self.rotate = bool(flip), float(rotate) if rotate is not None else None
        self.divide = bool(divide_depth_by_scale)
        self.geometric = self.scale is not None or self.rotate is not None
        self.rng = np.random.default_rng(seed)

    def set_seed(self, seed: int) -> None:
        """Reseed :meth:`draw` (datasets call it per sample, from ``(seed, epoch, index)``)."""
        self.rng = np.random.default_rng(seed)

    def draw(self) -> dict[str, np.ndarray]:
        """One sample's parameters, float32: ``flip`` (0/1), ``scale``, ``angle`` (degrees), ``colour`` (3,)."""
        r = self.rng
        return {
            "flip": np.float32(r.random() < 0.5 if self.flip else 0),
            "scale": np.float32(r.uniform(*self.scale) if self.scale else 1),
            "angle": np.float32(r.uniform(-self.rotate, self.rotate) if self.rotate else 0),
            "colour": (r.uniform(*self.color, 3) if self.color else np.ones(3)).astype(np.float32),
        }

    def __call__(self, rgb: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.apply(rgb, depth, self.draw())

    def apply(self, rgb: np.ndarray, depth: np.ndarray, p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The host path: one sample with parameters ``p`` of :meth:`draw`."""
        image, depth = unit_rgb(rgb), np.asarray(depth, dtype=np.float32)
        if p["flip"]:
            image, depth = image[:, ::-1], depth[:, ::-1]
        if self.geometric:
            h, w = depth.shape
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(p["angle"]), float(p["scale"]))
            warp = {"dsize": (w, h), "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
            image = cv2.warpAffine(np.ascontiguousarray(image), m, flags=cv2.INTER_LINEAR, **warp)
            depth = cv2.warpAffine(np.ascontiguousarray(depth), m, flags=cv2.INTER_NEAREST, **warp)
            if self.divide:
                depth = depth / p["scale"]
        return np.clip(image * p["colour"], 0, 1), np.ascontiguousarray(depth)

    def apply_batch(
        self, image: torch.Tensor, depth: torch.Tensor, p: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The device path: ``image`` (B,3,H,W), uint8 or float in [0, 1], and ``depth`` (B,H,W) with
        the collated parameters ``p`` of :meth:`draw`, on whatever device they are."""
        to_unit = 1 / 255 if image.dtype == torch.uint8 else 1
        depth = depth.float()
        p = {k: v.to(image.device) for k, v in p.items()}
        if self.geometric:  # the flip is folded into the one resampling
            grid = sampling_grid(p["scale"], p["angle"], p["flip"].bool(), depth.shape[-2:])
            warp = {"padding_mode": "zeros", "align_corners": False}
            image = F.grid_sample(image.double(), grid, mode="bilinear", **warp)
            # nearest in float32: the coordinates' rounding only decides near-ties, which may go either way
            depth = F.grid_sample(depth[:, None], grid.float(), mode="nearest", **warp)[:, 0]
            if self.divide:
                depth = depth / p["scale"].float()[:, None, None]
        else:
            flip = p["flip"].bool()
            image = torch.where(flip[:, None, None, None], image.flip(-1), image)
            depth = torch.where(flip[:, None, None], depth.flip(-1), depth)
        colour = p["colour"].float() * to_unit
        return (image.float() * colour[:, :, None, None]).clamp_(0, 1), depth


def unit_rgb(rgb: np.ndarray) -> np.ndarray:
    """RGB as float32 in [0, 1]: uint8 / 255 (no copy of what already is float32)."""
    return rgb.astype(np.float32) / np.float32(255) if rgb.dtype == np.uint8 else np.asarray(rgb, dtype=np.float32)


def sampling_grid(scale: torch.Tensor, angle: torch.Tensor, flip: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``grid_sample``'s (B,H,W,2) grid, float64, for a horizontal flip (where ``flip``) followed by
    OpenCV's ``getRotationMatrix2D(centre, angle, scale)``: where each output pixel samples its input,
    in coordinates normalised to [-1, 1] (``align_corners=False``). Their origin is the frame's centre,
    so the warp is linear there, and the flip only negates x. float64, as OpenCV's coordinates: float32
    ones are good to only ~3e-5 pixel across 320 pixels."""
    h, w = size
    a = angle.double() * (math.pi / 180)
    s = scale.double()
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    sign = 1 - 2 * flip.double()
    x = (torch.arange(w, dtype=torch.float64, device=s.device) * 2 + 1) / w - 1
    y = (torch.arange(h, dtype=torch.float64, device=s.device) * 2 + 1) / h - 1
    x, y = x[None, None, :], y[None, :, None]
    cos, sin, sign = cos[:, None, None], sin[:, None, None], sign[:, None, None]
    grid = torch.empty((len(s), h, w, 2), dtype=torch.float64, device=s.device)
    grid[..., 0] = sign * (cos * x - sin * (h / w) * y)
    grid[..., 1] = sin * (w / h) * x + cos * y
    return grid
