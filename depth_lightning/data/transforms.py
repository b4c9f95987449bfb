"""The paper's augmentation (Sec. 3.3): parameters drawn once per sample, applied on the host (one
sample, OpenCV) or on the accelerator (the whole batch, torch) with the same float arithmetic.

Order: horizontal flip; scale s ~ U[lo, hi] and rotation ~ U[-r, r] degrees about the frame's centre,
the frame's size kept (the centre crop of the scaled frame), RGB bilinear, depth nearest-neighbour
with 0 (invalid) outside the frame, so depth is never interpolated across holes, and divided by s
(Eigen et al.'s convention); each colour channel x U[lo, hi], clipped to [0, 1].

Both paths draw the parameters with :meth:`PaperAugmentation.draw`, so ``data.augment_on=device``
trains on the samples ``data.augment_on=host`` would (within 1e-5 on RGB in [0, 1]).

On the host the augmentation is an albumentations pipeline (:meth:`PaperAugmentation.host`): the paper's
part as :class:`PaperTransform`, a ``DualTransform`` that applies the drawn parameters (OpenCV in float,
the same arithmetic as before), then ``extra``: any albumentations transforms from the config
(``data.augment.extra``), photometric ones on the RGB only, geometric ones on the RGB, the depth and a
validity mask together, masks resampled by nearest neighbour only. Extras are seeded per sample from
``(seed, epoch, index)`` like the paper's draw, so a run stays reproducible and resumable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F

from depth_lightning.core.errors import ConfigError

AUGMENT_ON = ("host", "device")
PROBE = (24, 32)  # the frame extras are tried on when the run starts: a size change is refused


def check_extras(extra: Sequence[Any] | None) -> list[A.BasicTransform]:
    """``data.augment.extra`` checked when the run starts: albumentations transforms that albumentations can
    apply to a depth map (photometric: the RGB only; geometric: also the depth and validity mask, resampled
    by nearest neighbour, never interpolated) and that keep the frame's size; refused by name otherwise."""
    out = []
    for i, t in enumerate(extra or []):
        name = f"data.augment.extra[{i}] ({type(t).__name__})"
        if not isinstance(t, A.BasicTransform) or isinstance(t, A.BaseCompose):
            raise ConfigError(
                f"config error: {name}: not an albumentations transform (_target_: albumentations.<Name>)"
            )
        if isinstance(t, A.DualTransform):
            if "mask" not in t.targets:
                raise ConfigError(
                    f"config error: {name}: albumentations cannot apply it to a depth map (no mask target)"
                )
            interpolation = getattr(t, "mask_interpolation", cv2.INTER_NEAREST)
            if interpolation != cv2.INTER_NEAREST:
                raise ConfigError(
                    f"config error: {name}: mask_interpolation={interpolation}: depth is resampled by nearest "
                    "neighbour only (0), never interpolated across holes"
                )
        elif not isinstance(t, A.ImageOnlyTransform):
            raise ConfigError(f"config error: {name}: neither photometric nor geometric; albumentations' kind unknown")
        probe = np.zeros((*PROBE, 3), np.float32), np.ones(PROBE, np.float32)
        try:
            done = A.Compose([t], additional_targets={"depth": "mask"}, p=1.0)(image=probe[0], depth=probe[1])
        except Exception as err:  # albumentations' own refusal, named
            raise ConfigError(f"config error: {name}: cannot be applied to an RGB-D frame ({err})") from None
        if done["image"].shape[:2] != PROBE or done["depth"].shape != PROBE:
            raise ConfigError(
                f"config error: {name}: changes the frame's size; the network's input is data.height x data.width "
                "(crop or resize transforms do not fit here)"
            )
        out.append(t)
    return out


class PaperTransform(A.DualTransform):
    """The paper's augmentation as an albumentations transform: it applies the parameters
    :meth:`PaperAugmentation.draw` drew for the sample (given as ``augment=`` in the call) to ``image``
    (bilinear, then the colour scale), ``depth`` (nearest, then / s) and ``mask`` (nearest)."""

    def __init__(self, augmentation: PaperAugmentation) -> None:
        super().__init__(p=1.0)
        self.augmentation = augmentation

    @property
    def targets(self) -> dict[str, Any]:
        return {"image": self.apply, "mask": self.apply_to_mask, "depth": self.apply_to_depth}

    def add_targets(self, additional_targets: dict[str, str]) -> None:
        # the pipeline names depth a mask for the extras; here it is depth, divided by s
        super().add_targets({k: v for k, v in additional_targets.items() if k != "depth"})

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {"drawn": data["augment"]}

    def apply(self, img: np.ndarray, drawn: dict[str, np.ndarray], **params: Any) -> np.ndarray:
        return self.augmentation.apply_image(img, drawn)

    def apply_to_depth(self, depth: np.ndarray, drawn: dict[str, np.ndarray], **params: Any) -> np.ndarray:
        return self.augmentation.apply_depth(depth, drawn)

    def apply_to_mask(self, mask: np.ndarray, drawn: dict[str, np.ndarray], **params: Any) -> np.ndarray:
        return self.augmentation.apply_depth(mask, drawn, divide=False)


class PaperAugmentation:
    """Callable ``(rgb HxWx3 uint8 or float in [0, 1], depth float32 HxW) -> (rgb float32 in [0, 1], depth)``.

    Args:
        color: each channel x U[lo, hi], or None.
        scale: s ~ U[lo, hi] about the centre, or None.
        flip: horizontal flip with probability 1/2.
        rotate: U[-rotate, rotate] degrees, or None.
        divide_depth_by_scale: depth / s after scaling (Eigen et al.'s convention).
        seed: of the generator :meth:`draw` uses (datasets reseed it per sample).
        extra: albumentations transforms applied after the paper's on the host (:func:`check_extras`),
            e.g. ``[{_target_: albumentations.GaussNoise, p: 0.5}]`` in the config.
    """

    def __init__(
        self,
        color: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
        flip: bool = False,
        rotate: float | None = None,
        divide_depth_by_scale: bool = True,
        seed: int | None = None,
        extra: Sequence[Any] | None = None,
    ) -> None:
        self.color = tuple(map(float, color)) if color is not None else None
        self.scale = tuple(map(float, scale)) if scale is not None else None
        self.flip, self.rotate = bool(flip), float(rotate) if rotate is not None else None
        self.divide = bool(divide_depth_by_scale)
        self.geometric = self.scale is not None or self.rotate is not None
        self.rng = np.random.default_rng(seed)
        self.extra = check_extras(extra)
        self.pipeline = A.Compose(
            [PaperTransform(self), *self.extra], additional_targets={"depth": "mask"}, p=1.0, seed=seed
        )

    def set_seed(self, seed: int) -> None:
        """Reseed :meth:`draw` and the extras (datasets call it per sample, from ``(seed, epoch, index)``)."""
        self.rng = np.random.default_rng(seed)
        if self.extra:
            self.pipeline.set_random_seed(seed)

    def describe(self) -> dict[str, Any]:
        """For the run's record: the paper's settings and the extras (albumentations' own description)."""
        return {
            "paper": {"color": self.color, "scale": self.scale, "flip": self.flip, "rotate": self.rotate,
                      "divide_depth_by_scale": self.divide},
            "extra": [A.to_dict(t)["transform"] for t in self.extra],
        }  # fmt: skip

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

    def host(
        self, rgb: np.ndarray, depth: np.ndarray, p: dict[str, np.ndarray], valid: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The host path, through the albumentations pipeline: the paper's part with parameters ``p`` of
        :meth:`draw`, then the extras; ``image`` float32 in [0, 1], ``depth``, and ``mask`` (``valid``,
        when given, moved with the depth)."""
        data = {"image": rgb, "depth": depth, "augment": p}
        if valid is not None:
            data["mask"] = valid
        out = self.pipeline(**data)
        if self.extra:  # a photometric extra may leave [0, 1]; the network's input is in it
            out["image"] = np.clip(out["image"], 0, 1, dtype=np.float32)
        return out

    def apply(self, rgb: np.ndarray, depth: np.ndarray, p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The paper's part alone on one sample with parameters ``p`` of :meth:`draw` (no extras)."""
        return self.apply_image(rgb, p), self.apply_depth(depth, p)

    def _warp(self, array: np.ndarray, p: dict[str, np.ndarray], flags: int) -> np.ndarray:
        if p["flip"]:
            array = array[:, ::-1]
        if not self.geometric:
            return array
        h, w = array.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(p["angle"]), float(p["scale"]))
        warp = {"dsize": (w, h), "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        return cv2.warpAffine(np.ascontiguousarray(array), m, flags=flags, **warp)

    def apply_image(self, rgb: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
        """RGB: flip, bilinear scale and rotation, colour scale clipped to [0, 1] (float32)."""
        return np.clip(self._warp(unit_rgb(rgb), p, cv2.INTER_LINEAR) * p["colour"], 0, 1)

    def apply_depth(self, depth: np.ndarray, p: dict[str, np.ndarray], divide: bool = True) -> np.ndarray:
        """Depth (or a mask): flip, nearest scale and rotation with 0 outside, then / s (``divide``)."""
        out = self._warp(np.asarray(depth, dtype=np.float32 if divide else depth.dtype), p, cv2.INTER_NEAREST)
        if divide and self.geometric and self.divide:
            out = out / p["scale"]
        return np.ascontiguousarray(out)

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
