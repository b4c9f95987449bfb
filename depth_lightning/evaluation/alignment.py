"""Alignment of relative depth to the ground truth before it is scored, per image, on exactly the pixels
that are scored (``../shared/reference/zero_shot_protocols.md`` section A records the peers' code).

    none                   the prediction is metric: scored as it is
    median                 p * median(g) / median(p)                       (UniDepth's ``si``)
    scale                  s * p, s by least squares
    scale_shift            s * p + t by least squares                      (Marigold, UniDepth's ``ssi``)
    scale_shift_disparity  1 / (s * x + t), x the predicted disparity, fitted by least squares to 1 / g;
                           the fitted disparity clipped at 1 / cap before inversion (Marigold, MoGe)
    scale_robust           s * p, s minimising sum |s p - g| / g           (MoGe's weighted L1)
    scale_shift_robust     s * p + t minimising sum |s p + t - g| / g       (MoGe's weighted L1)

Fits are float64 and use the valid pixels of the scored region (optionally a nearest subsample of
them: Marigold's ETH3D fit, MoGe's 64 x 64 robust fit); the fitted map is then clipped to the
protocol's range like any prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from depth_lightning.core.errors import ConfigError

MODES = ("none", "median", "scale", "scale_shift", "scale_shift_disparity", "scale_robust", "scale_shift_robust")
AFFINE = ("scale_shift", "scale_shift_disparity", "scale_shift_robust")  # predictions of any sign are fitted
MIN_PIXELS = 100  # a frame's valid pixels below which no fit is trusted: 50x over-determined for 2 unknowns
TOO_FEW = ("leave_out", "refuse")
ROBUST_GRID = 64  # MoGe fits its weighted-L1 alignment on a 64 x 64 subsample (moge/test/metrics.py:128)
ROBUST_MAX_RESOLUTION = 128  # a robust fit on 128 x 128 pixels takes seconds; on a full frame, hours
_ANCHORS_PER_CHUNK = 256  # the robust affine fit's memory: chunk x pixels float64


@dataclass(frozen=True)
class Alignment:
    """How predictions are aligned to the ground truth before scoring.

    Args:
        mode: one of :data:`MODES`.
        prediction: what the maps hold: ``depth``, or ``disparity`` (inverse depth up to scale and
            shift, as MiDaS and Depth Anything give it; fitted with ``scale_shift_disparity`` only).
        max_resolution: fit on a nearest subsample of the image whose longer side is at most this
            (Marigold's ``--alignment_max_res``; the aligned map is still scored at full resolution);
            null: every scored pixel (the robust fits: a 64 x 64 grid, as MoGe).
        min_pixels: a frame with fewer valid ground-truth pixels than this is not fitted and scored: a fit
            through one pixel is exact and would score as perfect. Such frames are left out of the means,
            counted and named (``too_few=refuse``: the evaluation stops, naming them).
        too_few: ``leave_out`` or ``refuse``.
    """

    mode: str = "none"
    prediction: str = "depth"
    max_resolution: int | None = None
    min_pixels: int = MIN_PIXELS
    too_few: str = "leave_out"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"config error: alignment.mode={self.mode!r} is unknown; allowed: {', '.join(MODES)}")
        if self.prediction not in ("depth", "disparity"):
            raise ConfigError(f"config error: alignment.prediction={self.prediction!r}; allowed: depth, disparity")
        if self.prediction == "disparity" and self.mode != "scale_shift_disparity":
            raise ConfigError(
                f"config error: alignment.prediction=disparity needs alignment.mode=scale_shift_disparity "
                f"(got {self.mode}): a disparity map is not depth until it is fitted"
            )
        if self.max_resolution is not None and (not isinstance(self.max_resolution, int) or self.max_resolution < 2):
            raise ConfigError(f"config error: alignment.max_resolution={self.max_resolution!r} must be an integer >= 2")
        if isinstance(self.min_pixels, bool) or not isinstance(self.min_pixels, int) or self.min_pixels < 1:
            raise ConfigError(f"config error: alignment.min_pixels={self.min_pixels!r} must be an integer >= 1")
        if self.too_few not in TOO_FEW:
            raise ConfigError(f"config error: alignment.too_few={self.too_few!r}; allowed: {', '.join(TOO_FEW)}")
        if self.mode.endswith("_robust") and (self.max_resolution or 0) > ROBUST_MAX_RESOLUTION:
            raise ConfigError(
                f"config error: alignment.max_resolution={self.max_resolution} with {self.mode}: the weighted-L1 "
                f"fit costs the square of its pixels; at most {ROBUST_MAX_RESOLUTION} (null: MoGe's {ROBUST_GRID} x "
                f"{ROBUST_GRID})"
            )

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @property
    def positive_only(self) -> bool:
        """Whether a prediction must be positive depth (no shift can make a negative value a depth)."""
        return self.mode not in AFFINE

    def card(self, fit_max_resolution: int | None = None) -> dict[str, Any]:
        """The protocol card's entry: what was fitted, on which pixels."""
        if not self.active:
            return {"mode": "none", "what": "metric predictions, scored as they are"}
        robust = self.mode.endswith("_robust")
        limit = self._fit_resolution(fit_max_resolution)
        pixels = f"a nearest subsample of longer side <= {limit}" if limit else "every scored pixel"
        if robust and not limit:
            pixels = f"the scored pixels of a nearest {ROBUST_GRID} x {ROBUST_GRID} grid"
        return {
            "mode": self.mode,
            "prediction": self.prediction,
            "fitted_on": f"per image, {pixels} of the scored pixels (valid ground truth in the region and range)",
            "fit": "weighted L1, weights 1 / g (MoGe)" if robust else "least squares, float64",
            "min_pixels": self.min_pixels,
            "too_few": self.too_few,
            "after": "the fitted disparity clipped at 1 / cap, then inverted; " * (self.mode == "scale_shift_disparity")
            + "the aligned depth clipped to [min_depth, cap]",
        }

    def _fit_resolution(self, protocol_limit: int | None) -> int | None:
        """The subsample a fit uses: this alignment's, else the protocol's; the robust fits (quadratic
        in the pixels) keep MoGe's 64 x 64 grid unless ``max_resolution`` is given here."""
        if self.max_resolution is not None or self.mode.endswith("_robust"):
            return self.max_resolution
        return protocol_limit

    def align(
        self,
        pred: Tensor,
        valid: Tensor,
        depth: Tensor,
        size: tuple[int, int],
        cap: float,
        fit_max_resolution: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(aligned (B, H*W) float32, fits (B, 2) float64 = scale, shift)``: ``pred`` (B,h,w) upsampled
        bilinearly to the ground truth's ``size``, fitted on ``valid`` (B, H*W) pixels of ``depth`` (B, H*W)."""
        pred = pred.reshape(-1, *pred.shape[-2:]).float()
        if tuple(pred.shape[-2:]) != tuple(size):
            pred = F.interpolate(pred[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        x = pred.flatten(1).double()
        picked = valid & _subsample(size, self._fit_resolution(fit_max_resolution), self.mode, x.device)
        fits = torch.stack([self.fit(x[i][picked[i]], depth[i][picked[i]].double()) for i in range(len(x))])
        scale, shift = fits[:, :1], fits[:, 1:]
        if self.mode == "scale_shift_disparity":
            disparity = (x if self.prediction == "disparity" else 1 / x) * scale + shift
            aligned = 1 / disparity.clamp_min(1 / cap)
        else:
            aligned = x * scale + shift
        return aligned.float(), fits

    def fit(self, x: Tensor, g: Tensor) -> Tensor:
        """``(scale, shift)`` float64 of prediction values ``x`` to ground truth ``g`` (1-D, float64);
        ``(nan, nan)`` without a pixel to fit on."""
        if x.numel() == 0:
            return torch.full((2,), float("nan"), dtype=torch.float64)
        zero = torch.zeros((), dtype=torch.float64)
        if self.mode == "median":
            return torch.stack([_median(g) / _median(x), zero])
        if self.mode == "scale":
            return torch.stack([(x * g).sum() / (x * x).sum(), zero])
        if self.mode == "scale_robust":
            return torch.stack([weighted_l1_scale(x, g, 1 / g), zero])
        if self.mode == "scale_shift_robust":
            return weighted_l1_affine(x, g, 1 / g)
        if self.mode == "scale_shift_disparity":
            x = x if self.prediction == "disparity" else 1 / x
            g = 1 / g
        return least_squares_affine(x, g)


def alignment_from(settings: Any) -> Alignment:
    """The ``alignment`` setting of a command (a mode name, or ``{mode, prediction, max_resolution}``),
    each key checked by name."""
    if settings is None or isinstance(settings, str):
        return Alignment(settings or "none")
    settings = dict(settings)
    known = ("mode", "prediction", "max_resolution", "min_pixels", "too_few")
    unknown = set(settings) - set(known)
    if unknown:
        raise ConfigError(
            f"config error: alignment.{sorted(unknown)[0]}: not an alignment setting ({', '.join(known)})"
        )
    return Alignment(**settings)


def _median(v: Tensor) -> Tensor:
    """NumPy's median: the mean of the two middle values of an even count (torch.median takes the lower)."""
    ordered = v.sort().values
    return (ordered[(len(v) - 1) // 2] + ordered[len(v) // 2]) / 2


def least_squares_affine(x: Tensor, y: Tensor) -> Tensor:
    """``(s, t)`` minimising sum (s x + t - y)^2, by centred sums (no cancellation); a constant ``x``
    gets s = 0, t = mean(y), one of its least-squares solutions."""
    mx, my = x.mean(), y.mean()
    dx = x - mx
    var = (dx * dx).sum()
    s = (dx * (y - my)).sum() / var if var > 0 else torch.zeros((), dtype=x.dtype)
    return torch.stack([s, my - s * mx])


def _weighted_median(values: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise minimiser ``a`` of sum_i w_i |a - v_i| (the smallest value whose cumulative weight
    reaches half the total) and the minimum."""
    order = torch.argsort(values, dim=-1)
    v, w = values.gather(-1, order), weights.gather(-1, order)
    cumulative = w.cumsum(-1)
    k = torch.searchsorted(cumulative, cumulative[..., -1:] / 2).clamp_max(v.shape[-1] - 1)
    a = v.gather(-1, k)
    return a[..., 0], (w * (a - v).abs()).sum(-1)


def weighted_l1_scale(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``s`` minimising sum w |s x - y| = sum (w |x|) |s - y / x| (pixels with x = 0 add a constant)."""
    keep = x != 0
    if not keep.any():
        return torch.zeros((), dtype=x.dtype)
    return _weighted_median(y[keep] / x[keep], w[keep] * x[keep].abs())[0]


def weighted_l1_affine(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """``(s, t)`` minimising sum w |s x + t - y|. An optimum passes through two pixels: through each
    pixel k in turn (t = y_k - s x_k) the best s is a weighted median; the best anchor wins (MoGe's
    ``align_affine`` does the same search). A constant ``x`` gets s = 0 and t the weighted median of ``y``."""
    best = (torch.tensor(float("inf"), dtype=x.dtype), None)
    for start in range(0, x.numel(), _ANCHORS_PER_CHUNK):
        xk, yk = x[start : start + _ANCHORS_PER_CHUNK, None], y[start : start + _ANCHORS_PER_CHUNK, None]
        dx, dy = x[None] - xk, y[None] - yk
        zero = dx == 0  # the anchor itself and pixels level with it: |t - y| is fixed, cost w |dy|
        ratios = torch.where(zero, 0.0, dy / torch.where(zero, 1.0, dx))
        s, cost = _weighted_median(ratios, torch.where(zero, 0.0, w * dx.abs()))
        cost = cost + (w * dy.abs() * zero).sum(-1)
        i = int(cost.argmin())
        if cost[i] < best[0]:
            best = (cost[i], torch.stack([s[i], (yk[i, 0] - s[i] * xk[i, 0])]))
    return best[1]


def _subsample(size: tuple[int, int], max_resolution: int | None, mode: str, device: torch.device) -> Tensor:
    """(1, H*W) bool: the pixels a fit may use (all, or those of a nearest-neighbour subsample)."""
    h, w = size
    if max_resolution is None and mode.endswith("_robust"):
        shape = {"size": (min(h, ROBUST_GRID), min(w, ROBUST_GRID))}
    elif max_resolution is not None and max(h, w) > max_resolution:
        # Marigold's torch.nn.Upsample(scale_factor=min(max_res / H, max_res / W), mode="nearest")
        shape = {"scale_factor": min(max_resolution / h, max_resolution / w)}
    else:
        return torch.ones(1, h * w, dtype=torch.bool, device=device)
    index = torch.arange(h * w, dtype=torch.float64, device=device).reshape(1, 1, h, w)
    picked = F.interpolate(index, mode="nearest", **shape).long().flatten()
    mask = torch.zeros(h * w, dtype=torch.bool, device=device)
    mask[picked] = True
    return mask[None]
