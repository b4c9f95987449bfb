"""The field's depth metrics and evaluation crops (BTS / AdaBins / ZoeDepth conventions)."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

METRIC_NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
CROPS = ("none", "eigen_nyu", "garg", "eigen")
MODES = ("per_image", "pooled")

# Pixel sums accumulated per image; every metric is a function of these.
_SUMS = ("n", "t1", "t2", "t3", "abs_rel", "sq_rel", "sq", "abs_log10", "e", "e2")


def crop_mask(crop: str, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """Boolean ``(height, width)`` mask of an evaluation crop.

    ``eigen_nyu``: rows 45:471, cols 41:601 of a 480x640 frame (scaled for other sizes);
    ``garg`` / ``eigen``: the KITTI crops as fractions of the frame, as peers compute them.
    """
    if crop not in CROPS:
        raise ValueError(f"evaluation crop {crop!r} is unknown; allowed: {', '.join(CROPS)}")
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    if crop == "none":
        mask[:] = True
    elif crop == "eigen_nyu":
        sy, sx = height / 480, width / 640
        mask[round(45 * sy) : round(471 * sy), round(41 * sx) : round(601 * sx)] = True
    else:
        top, bottom = (0.40810811, 0.99189189) if crop == "garg" else (0.3324324, 0.91351351)
        mask[int(top * height) : int(bottom * height), int(0.03594771 * width) : int(0.96405229 * width)] = True
    return mask


_LOG_THRESHOLDS = (math.log(1.25), 2 * math.log(1.25), 3 * math.log(1.25))


def _per_image_sums(pred: Tensor, gt: Tensor, valid: Tensor) -> Tensor:
    """``(B, len(_SUMS))`` float64 sums over each image's valid pixels.

    Off the mask both maps are set to 1, so every error term there is exactly 0 and needs no masking;
    only the threshold counts subtract the invalid pixels. Per-pixel terms and an image's sums in
    float32: PyTorch's cascade summation keeps a sum within ~1e-8 relative of float64's, below the
    terms' own ~1e-7, at a sixth of the cost (no float64 copy of each map). Images are summed in
    float64, one row each, so an image's sums do not depend on its batch.
    ``max(p/g, g/p) < t`` is tested as ``|ln(p/g)| < ln t``.
    """
    one = torch.ones((), dtype=pred.dtype, device=pred.device)
    rows = []
    for p, g, v in zip(pred.flatten(1), gt.flatten(1), valid.flatten(1), strict=True):
        p, g = torch.where(v, p, one), torch.where(v, g, one)
        n = torch.count_nonzero(v)
        e = torch.log(p / g)
        abs_e = e.abs()
        diff = p - g
        sq = diff.square()
        off = v.numel() - n
        rows.append(
            torch.stack(
                [
                    n.double(),
                    *((torch.count_nonzero(abs_e < t) - off).double() for t in _LOG_THRESHOLDS),
                    diff.abs_().div_(g).sum().double(),
                    (sq / g).sum().double(),
                    sq.sum().double(),
                    abs_e.sum().double() / math.log(10),
                    e.sum().double(),
                    e.square_().sum().double(),
                ]
            )
        )
    if not rows:
        return torch.zeros(0, len(_SUMS), dtype=torch.float64, device=pred.device)
    return torch.stack(rows)


def metrics_from_sums(s: Tensor) -> Tensor:
    """Metrics ``(..., len(METRIC_NAMES))`` from pixel sums ``(..., len(_SUMS))``."""
    n = s[..., 0]
    mean = {k: s[..., i] / n for i, k in enumerate(_SUMS)}
    silog_var = (mean["e2"] - mean["e"].square()).clamp_min(0)
    return torch.stack(
        [
            mean["t1"],
            mean["t2"],
            mean["t3"],
            mean["abs_rel"],
            mean["sq_rel"],
            mean["sq"].sqrt(),
            mean["e2"].sqrt(),  # rmse log
            mean["abs_log10"],
            100 * silog_var.sqrt(),
        ],
        dim=-1,
    )


class DepthMetrics(Metric):
    """δ<1.25^{1,2,3}, abs rel, sq rel, rmse, rmse log, log10 and silog.

    Ground truth is valid where ``min_depth < g < max_depth``; predictions are upsampled bilinearly
    to the ground truth's size, clipped to ``[min_depth, max_depth]`` (inf -> max, NaN -> min), then
    the crop is applied. ``per_image`` (the field's convention) averages each image's metrics;
    ``pooled`` averages over all valid pixels of all images.

    The state is one float64 row per image (its metrics, or its pixel sums when pooled) with the
    image's id, gathered across processes and summed in id order: evaluation split across any
    number of processes equals single-process evaluation on the same images, to the last bit.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(
        self,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        crop: str = "none",
        mode: str = "per_image",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"metrics need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        if mode not in MODES:
            raise ValueError(f"metrics mode {mode!r} is unknown; allowed: {', '.join(MODES)}")
        crop_mask(crop, 8, 8)  # validates the name
        self.min_depth, self.max_depth, self.crop, self.mode = min_depth, max_depth, crop, mode
        self.add_state("rows", [], dist_reduce_fx="cat")
        self.add_state("ids", [], dist_reduce_fx="cat")
        self.add_state("empty_images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self._seen = 0
        self.last_count = 0

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None, ids: Tensor | None = None) -> None:
        """``pred`` and ``target``: ``(B,H,W)`` or ``(B,1,H,W)`` depth in metres; ``mask`` (B,H,W): an
        evaluation region per image (e.g. KITTI's crop in original-frame coordinates); ``ids``: the
        images' dataset indices (default: the order of arrival)."""
        pred = pred.reshape(-1, *pred.shape[-2:]).float()
        target = target.reshape(-1, *target.shape[-2:]).float()
        if pred.shape[0] != target.shape[0]:
            raise ValueError(f"batch sizes differ: prediction {pred.shape[0]}, ground truth {target.shape[0]}")
        if ids is None:
            ids = torch.arange(self._seen, self._seen + pred.shape[0])
        self._seen += pred.shape[0]
        pred = torch.nan_to_num(pred, nan=self.min_depth, posinf=self.max_depth, neginf=self.min_depth)
        if pred.shape[-2:] != target.shape[-2:]:
            pred = F.interpolate(pred[:, None], size=target.shape[-2:], mode="bilinear", align_corners=False)
            pred = pred[:, 0]
        pred = pred.clamp(self.min_depth, self.max_depth)
        valid = (target > self.min_depth) & (target < self.max_depth)  # False for NaN and inf too
        valid &= crop_mask(self.crop, *target.shape[-2:], device=target.device)
        if mask is not None:
            valid &= mask.reshape(valid.shape).bool()
        sums = _per_image_sums(pred, target, valid)
        has_pixels = sums[:, 0] > 0
        self.empty_images += (~has_pixels).sum()
        sums = sums[has_pixels]
        self.rows.append(metrics_from_sums(sums) if self.mode == "per_image" else sums)
        self.ids.append(ids.to(sums.device).reshape(-1)[has_pixels].double())

    def compute(self) -> dict[str, Tensor]:
        # a list in one process, one tensor after a distributed sync
        empty = isinstance(self.rows, list) and not self.rows
        rows = torch.zeros(0, 1, dtype=torch.float64) if empty else dim_zero_cat(self.rows)
        if rows.shape[0] == 0:
            warnings.warn("DepthMetrics.compute() called with no image holding a valid pixel: NaN", stacklevel=2)
            return {k: torch.tensor(math.nan, dtype=torch.float64) for k in METRIC_NAMES}
        self.last_count = rows.shape[0]
        rows = rows[torch.argsort(dim_zero_cat(self.ids), stable=True)]
        if self.mode == "per_image":
            values = rows.sum(0) / rows.shape[0]
        else:
            values = metrics_from_sums(rows.sum(0))
        return dict(zip(METRIC_NAMES, values.unbind(), strict=True))

    def reset(self) -> None:
        super().reset()
        self._seen = 0


class BinConfusion(Metric):
    """Counts of (ground-truth bin, hard-max bin) over valid pixels, bins merged to ``merged`` groups
    (the paper's Fig. 7 shows 50); summed across processes."""

    full_state_update = False

    def __init__(self, num_bins: int, merged: int = 50, ignore_index: int = -100, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_bins, self.size, self.ignore_index = num_bins, min(merged, num_bins), ignore_index
        self.add_state("counts", torch.zeros(self.size, self.size, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, predicted: Tensor, labels: Tensor) -> None:
        valid = labels != self.ignore_index
        gt = labels[valid] * self.size // self.num_bins
        pr = predicted[valid] * self.size // self.num_bins
        self.counts += torch.bincount(gt * self.size + pr, minlength=self.size**2).reshape(self.size, self.size)

    def compute(self) -> Tensor:
        return self.counts
