"""The field's depth metrics (BTS / AdaBins / ZoeDepth conventions); regions and caps: ``protocol``.

For predicted depth p and ground truth g over an image's valid pixels, with e = ln p - ln g:

    d1, d2, d3  mean(max(p/g, g/p) < 1.25^k)       abs_rel  mean(|p - g| / g)
    sq_rel      mean((p - g)^2 / g)                 rmse     sqrt(mean((p - g)^2))
    rmse_log    sqrt(mean(e^2))                     log10    mean(|log10 p - log10 g|)
    silog       100 sqrt(mean(e^2) - mean(e)^2)     (BTS, ZoeDepth, the Toolbox)

Each image contributes sums over its pixels (:data:`SUMS`); ``per_image`` averages each image's
metrics over images (the field's convention), ``pooled`` computes them over all pixels at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from depth_lightning.core.errors import NoValidPixels

# How per-image results combine: the mean of the images' metrics, or the metrics of all pixels at once.
AGGREGATIONS = ("per_image", "pooled")
METRIC_NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
# Sums over an image's valid pixels; every metric is a function of them.
SUMS = ("n", "d1", "d2", "d3", "abs_rel", "sq_rel", "sq_err", "abs_log_err", "log_err", "sq_log_err")
# Each metric's definition, as the protocol card states it (p: prediction, g: ground truth, over an
# image's valid pixels). SILog has three definitions in the field: this is BTS's / ZoeDepth's.
DEFINITIONS = {
    "d1": "mean(max(p/g, g/p) < 1.25)",
    "d2": "mean(max(p/g, g/p) < 1.25^2)",
    "d3": "mean(max(p/g, g/p) < 1.25^3)",
    "abs_rel": "mean(|p - g| / g)",
    "sq_rel": "mean((p - g)^2 / g)",
    "rmse": "sqrt(mean((p - g)^2)) [m]",
    "rmse_log": "sqrt(mean(e^2)), e = ln p - ln g",
    "log10": "mean(|log10 p - log10 g|)",
    "silog": "100 * sqrt(mean(e^2) - mean(e)^2), e = ln p - ln g (BTS, ZoeDepth, the Toolbox; not "
    "Depth-Anything-V2's sqrt(mean(e^2) - 0.5 mean(e)^2))",
    "pixel_acc": "share of labelled pixels whose argmax bin is their ground-truth bin, at the output "
    "resolution, pooled over images (Table 4)",
    "ause_abs_rel": "area under (abs rel of the pixels kept after removing the most uncertain fraction f) "
    "minus (the same, removing the largest errors first), f = 0..0.98; uncertainty = std of log depth",
    "ause_rmse": "as ause_abs_rel, with RMSE [m]",
}
# Predictions are clipped at least this far from 0 so that log depth stays finite (min_depth may be 0).
_POSITIVE = 1e-6


@dataclass(frozen=True)
class ScoredTarget:
    """A ground truth prepared once for every prediction scored against it (both decoders, the
    baselines). Rows are images, columns their flattened pixels; off the valid mask the depth is 1,
    so that every term stays finite there."""

    settings: tuple[float, float]  # (min_depth, max_depth) it was prepared for
    size: tuple[int, int]
    valid: Tensor  # bool
    depth: Tensor
    log_depth: Tensor  # float64


def scored_prediction(pred: Tensor, target: ScoredTarget) -> Tensor:
    """``pred`` (B,h,w) as it is scored: upsampled bilinearly to the ground truth's size, clipped to
    ``[min_depth, max_depth]`` (inf -> max, NaN -> min; at least 1e-6 m), flattened to (B, N)."""
    low, high = target.settings
    pred = torch.nan_to_num(pred.float(), nan=low, posinf=high, neginf=low)
    if pred.shape[-2:] != target.size:
        pred = F.interpolate(pred[:, None], size=target.size, mode="bilinear", align_corners=False)[:, 0]
    return pred.flatten(1).clamp(max(low, _POSITIVE), high)


def image_sums(pred: Tensor, target: ScoredTarget) -> Tensor:
    """``(B, len(SUMS))`` float64: each image's sums over its valid pixels; ``pred`` (B, N) clipped.

    Off the mask the prediction is set to the ground truth, so every error term is 0 there and only
    the threshold counts need the mask. Pixel terms and an image's sums are float32 (PyTorch's
    cascade summation stays within ~1e-8 relative of float64's, independent of the thread count),
    except the log error's: silog subtracts mean(e)^2 from mean(e^2), nearly equal when the log error
    is almost constant (a prediction off by one factor), so e and its sums are float64 from the
    float32 depths on. Scalar factors (1 / ln 10) are applied to the sums, not the pixels: an
    elementwise operation with a scalar may round differently with the thread count.
    """
    valid, g = target.valid, target.depth
    p = torch.where(valid, pred, g)
    ratio = torch.maximum(p / g, g / p)
    err = p - g
    log_err = torch.log(p.double()) - target.log_depth
    single = (
        valid,
        valid & (ratio < 1.25),
        valid & (ratio < 1.25**2),
        valid & (ratio < 1.25**3),
        err.abs() / g,
        err.square() / g,
        err.square(),
    )
    double = (log_err.abs(), log_err, log_err.square())
    sums = [t.sum(1, dtype=torch.float32).double() for t in single] + [t.sum(1) for t in double]
    return torch.stack(sums, 1)


def aggregate(sums: Tensor, mode: str) -> dict[str, Tensor]:
    """The metrics of images with per-image ``sums`` (N, len(SUMS)): the mean of each image's metric
    (``per_image``), or the metric of all their pixels at once (``pooled``)."""
    values = metrics_from_sums(sums).mean(0) if mode == "per_image" else metrics_from_sums(sums.sum(0))
    return dict(zip(METRIC_NAMES, values.unbind(), strict=True))


def metrics_from_sums(s: Tensor) -> Tensor:
    """Metrics ``(..., len(METRIC_NAMES))`` from sums ``(..., len(SUMS))``."""
    mean = {k: s[..., i] / s[..., 0] for i, k in enumerate(SUMS)}
    silog_var = (mean["sq_log_err"] - mean["log_err"].square()).clamp_min(0)
    return torch.stack(
        [
            mean["d1"],
            mean["d2"],
            mean["d3"],
            mean["abs_rel"],
            mean["sq_rel"],
            mean["sq_err"].sqrt(),
            mean["sq_log_err"].sqrt(),
            mean["abs_log_err"] / math.log(10),  # |log10 p - log10 g| = |ln p - ln g| / ln 10
            100 * silog_var.sqrt(),
        ],
        dim=-1,
    )


class DepthMetrics(Metric):
    """δ<1.25^{1,2,3}, abs rel, sq rel, rmse, rmse log, log10 and silog.

    Ground truth is valid where ``min_depth < g < max_depth`` and inside the evaluation region given
    with each batch (:mod:`depth_lightning.evaluation.protocol`); predictions are upsampled bilinearly to the
    ground truth's size and clipped to ``[min_depth, max_depth]`` (inf -> max, NaN -> min; and at
    least 1e-6 m, so log depth is finite).

    The state is one float64 row of sums per image with the image's id, gathered across processes
    and reduced in id order: evaluation split across any number of processes equals single-process
    evaluation on the same images, to the last bit.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(
        self,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        mode: str = "per_image",
        truth_in_range: bool = True,
        min_pixels: int = 1,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"metrics need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        if mode not in AGGREGATIONS:
            raise ValueError(f"metrics mode {mode!r} is unknown; allowed: {', '.join(AGGREGATIONS)}")
        self.min_depth, self.max_depth, self.mode = min_depth, max_depth, mode
        self.truth_in_range, self.min_pixels = truth_in_range, max(1, int(min_pixels))
        self.add_state("rows", [], dist_reduce_fx="cat")
        self.add_state("ids", [], dist_reduce_fx="cat")
        self.add_state("empty_ids", [], dist_reduce_fx="cat")  # images without a valid pixel: left out
        self.add_state("sparse_ids", [], dist_reduce_fx="cat")  # images with 0 < valid pixels < min_pixels: left out
        self.arrival = ArrivalOrder()

    def prepare(self, target: Tensor, mask: Tensor | None = None) -> ScoredTarget:
        """The ground truth, to pass to :meth:`update` for several predictions of it.

        ``target`` (B,H,W) or (B,1,H,W) in metres; ``mask`` (B,H,W): each image's evaluation region
        (:meth:`depth_lightning.evaluation.protocol.EvalProtocol.mask`)."""
        target = target.reshape(-1, *target.shape[-2:]).float()
        g = target.flatten(1)
        valid = torch.isfinite(g) & (g > 0)
        if self.truth_in_range:
            valid &= (g > self.min_depth) & (g < self.max_depth)
        if mask is not None:
            valid &= mask.reshape(valid.shape).bool()
        depth = torch.where(valid, g, 1.0)
        log_depth = torch.log(depth.double())
        return ScoredTarget((self.min_depth, self.max_depth), tuple(target.shape[-2:]), valid, depth, log_depth)

    def update(
        self,
        pred: Tensor,
        target: Tensor | ScoredTarget,
        mask: Tensor | None = None,
        ids: Tensor | None = None,
    ) -> None:
        """``pred`` and ``target``: ``(B,H,W)`` or ``(B,1,H,W)`` depth in metres, or a target from
        :meth:`prepare` (then ``mask`` is already in it); ``mask`` (B,H,W): an evaluation region per
        image; ``ids``: the images' dataset indices (default: the order of arrival)."""
        if not isinstance(target, ScoredTarget):
            target = self.prepare(target, mask)
        elif target.settings != (self.min_depth, self.max_depth):
            raise ValueError(
                f"target prepared for (min_depth, max_depth) = {target.settings}, "
                f"this metric uses {(self.min_depth, self.max_depth)}"
            )
        pred = pred.reshape(-1, *pred.shape[-2:]).float()
        if pred.shape[0] != target.valid.shape[0]:
            raise ValueError(f"batch sizes differ: prediction {pred.shape[0]}, ground truth {target.valid.shape[0]}")
        ids = self.arrival.ids(ids, pred.shape[0])
        sums = image_sums(scored_prediction(pred, target), target)
        has_pixels = sums[:, 0] >= self.min_pixels
        ids = ids.to(sums.device).reshape(-1).double()
        self.empty_ids.append(ids[sums[:, 0] == 0])
        self.sparse_ids.append(ids[(sums[:, 0] > 0) & ~has_pixels])
        self.rows.append(sums[has_pixels])
        self.ids.append(ids[has_pixels])

    def empty_images(self) -> list[int]:
        """Ids of the images scored so far that held no valid pixel (left out of every metric), from
        every process."""
        with self.sync_context():
            empty = isinstance(self.empty_ids, list) and not self.empty_ids
            return [] if empty else sorted(int(i) for i in dim_zero_cat(self.empty_ids).tolist())

    def sparse_images(self) -> list[int]:
        """Ids of the images that held some valid pixels, fewer than ``min_pixels`` (left out), from every
        process."""
        with self.sync_context():
            empty = isinstance(self.sparse_ids, list) and not self.sparse_ids
            return [] if empty else sorted(int(i) for i in dim_zero_cat(self.sparse_ids).tolist())

    def images(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (N,), sums (N, len(SUMS)))``: every scored image with a valid pixel, from every
        process, in id order: what per-image results and intervals are made of."""
        with self.sync_context():
            ids, rows = self._images()
        return ids.long().cpu().numpy(), rows.cpu().numpy()

    def _images(self) -> tuple[Tensor, Tensor]:
        # a list in one process, one tensor after a distributed sync
        if isinstance(self.rows, list) and not self.rows:
            return torch.zeros(0, dtype=torch.float64), torch.zeros(0, len(SUMS), dtype=torch.float64)
        ids = dim_zero_cat(self.ids)
        order = torch.argsort(ids, stable=True)
        return ids[order], dim_zero_cat(self.rows)[order]

    def compute(self) -> dict[str, Tensor]:
        rows = self._images()[1]
        if rows.shape[0] == 0:
            empty = (
                0 if isinstance(self.empty_ids, list) and not self.empty_ids else dim_zero_cat(self.empty_ids).numel()
            )
            raise NoValidPixels(
                f"no image holds a valid ground-truth pixel ({empty} image(s) scored, every one empty under "
                f"{self.min_depth} < depth < {self.max_depth} and its region)"
            )
        return aggregate(rows, self.mode)

    def reset(self) -> None:
        super().reset()
        self.arrival.reset()


class ArrivalOrder:
    """Ids for images that come without their own (batches built by hand): the order they arrived in
    since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.seen = 0

    def ids(self, given: Tensor | None, count: int) -> Tensor:
        """``given``, else the next ``count`` ids in order of arrival; counts the images either way."""
        if given is None:
            given = torch.arange(self.seen, self.seen + count)
        self.seen += count
        return given

    def reset(self) -> None:
        self.seen = 0


class ImageRows(Metric):
    """Rows of numbers per image with the image's id, gathered across processes and returned in id
    order: per-image counts that a test writes out and resamples."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("rows", [], dist_reduce_fx="cat")
        self.add_state("ids", [], dist_reduce_fx="cat")

    def update(self, rows: Tensor, ids: Tensor) -> None:
        self.rows.append(rows.to(self.device).double())
        self.ids.append(ids.reshape(-1).to(self.device).double())

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (N,), rows (N, k))`` in id order."""
        if isinstance(self.rows, list) and not self.rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0))
        ids = dim_zero_cat(self.ids)
        order = torch.argsort(ids, stable=True)
        return ids[order].long().cpu().numpy(), dim_zero_cat(self.rows)[order].cpu().numpy()
