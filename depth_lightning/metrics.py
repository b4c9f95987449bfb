"""The field's depth metrics (BTS / AdaBins / ZoeDepth conventions); regions and caps: ``protocol``."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from depth_lightning.protocol import AGGREGATIONS

METRIC_NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")

# Pixel sums accumulated per image; every metric is a function of these.
_SUMS = ("n", "t1", "t2", "t3", "abs_rel", "sq_rel", "sq", "abs_log10", "e", "e2")


_LOG_THRESHOLDS = (math.log(1.25), 2 * math.log(1.25), 3 * math.log(1.25))
# Predictions are clipped at least this far from 0 so that log depth stays finite (min_depth may be 0).
_POSITIVE = 1e-6


@dataclass(frozen=True)
class ScoredTarget:
    """A ground truth's per-pixel terms, computed once and shared by every prediction scored against
    it (both decoders, the baselines). Rows are images, columns their flattened pixels."""

    settings: tuple[float, float]  # (min_depth, max_depth) it was prepared for
    size: tuple[int, int]
    valid: Tensor  # float 1 on valid pixels, 0 elsewhere
    invalid: Tensor  # 1 - valid
    depth: Tensor  # the ground truth, 1 off the mask (finite everywhere)
    log_depth: Tensor
    inv_depth: Tensor
    count: Tensor  # valid pixels per image, float64


def _per_image_sums(pred: Tensor, target: ScoredTarget) -> Tensor:
    """``(B, len(_SUMS))`` float64 sums over each image's valid pixels; ``pred`` (B, N) clipped.

    Off the mask the prediction is replaced by the ground truth (``p*m + g*(1-m)`` is exact for m in
    {0, 1}), so every error term there is exactly 0 and the sums need no mask; the threshold counts
    subtract the invalid pixels. ``max(p/g, g/p) < t`` is tested as ``|ln p - ln g| < ln t`` and
    counted exactly as the sum of ``sign(max(t - |e|, 0))`` (IEEE: ``t - a > 0`` iff ``a < t``): float
    arithmetic, 3x faster on the CPU than boolean masks. Per-pixel terms and an image's sums are
    float32 (PyTorch's cascade summation stays within ~1e-8 relative of float64's, below the terms'
    own rounding, and does not depend on the thread count); images are summed in float64.
    """
    pred = torch.addcmul(pred * target.valid, target.depth, target.invalid)
    e = torch.log(pred) - target.log_depth
    abs_e = e.abs()
    diff = pred - target.depth
    sq = diff.square()
    off = target.count.new_tensor(pred.shape[1]) - target.count
    sums = [
        *((t - abs_e).clamp_(min=0).sign_().sum(1).double() - off for t in _LOG_THRESHOLDS),
        (diff.abs_() * target.inv_depth).sum(1),
        (sq * target.inv_depth).sum(1),
        sq.sum(1),
        abs_e.sum(1) / math.log(10),
        e.sum(1),
        e.square_().sum(1),
    ]
    return torch.stack([target.count, *(x.double() for x in sums)], 1)


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

    Ground truth is valid where ``min_depth < g < max_depth`` and inside the evaluation region given
    with each batch (:mod:`depth_lightning.protocol`); predictions are upsampled bilinearly to the
    ground truth's size and clipped to ``[min_depth, max_depth]`` (inf -> max, NaN -> min; and at
    least 1e-6 m, so log depth is finite). ``per_image`` (the field's
    convention) averages each image's metrics; ``pooled`` averages over all valid pixels of all images.

    The state is one float64 row of pixel sums per image with the image's id, gathered across
    processes and reduced in id order: evaluation split across any number of processes equals
    single-process evaluation on the same images, to the last bit.
    """

    full_state_update = False
    higher_is_better = None

    def __init__(
        self,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        mode: str = "per_image",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= min_depth < max_depth:
            raise ValueError(f"metrics need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
        if mode not in AGGREGATIONS:
            raise ValueError(f"metrics mode {mode!r} is unknown; allowed: {', '.join(AGGREGATIONS)}")
        self.min_depth, self.max_depth, self.mode = min_depth, max_depth, mode
        self.add_state("rows", [], dist_reduce_fx="cat")
        self.add_state("ids", [], dist_reduce_fx="cat")
        self.add_state("empty_images", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self._seen = 0
        self.last_count = 0  # images and valid pixels of the last compute()
        self.last_pixels = 0

    def prepare(self, target: Tensor, mask: Tensor | None = None) -> ScoredTarget:
        """The ground truth's terms, to pass to :meth:`update` for several predictions of it.

        ``target`` (B,H,W) or (B,1,H,W) in metres; ``mask`` (B,H,W): each image's evaluation region
        (:meth:`depth_lightning.protocol.EvalProtocol.mask`)."""
        target = target.reshape(-1, *target.shape[-2:]).float()
        size = tuple(target.shape[-2:])
        # Float arithmetic instead of boolean masks (3x faster on the CPU), exact: for IEEE floats
        # x - y > 0 iff x > y, so sign(max(x - y, 0)) is 1 exactly where x > y. NaN and inf are
        # mapped outside (min, max) first.
        t = torch.nan_to_num(target, nan=self.min_depth, posinf=self.max_depth, neginf=self.min_depth).flatten(1)
        m = (t - self.min_depth).clamp_(min=0).sign_() * (self.max_depth - t).clamp_(min=0).sign_()
        if mask is not None:
            m *= mask.reshape(m.shape).float()
        invalid = 1 - m
        depth = t * m + invalid  # exact; 1 off the mask, so every term stays finite there
        return ScoredTarget(
            settings=(self.min_depth, self.max_depth),
            size=size,
            valid=m,
            invalid=invalid,
            depth=depth,
            log_depth=torch.log(depth),
            inv_depth=depth.reciprocal(),
            count=m.sum(1).double(),  # exact: integers below 2^24
        )

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
        if ids is None:
            ids = torch.arange(self._seen, self._seen + pred.shape[0])
        self._seen += pred.shape[0]
        pred = torch.nan_to_num(pred, nan=self.min_depth, posinf=self.max_depth, neginf=self.min_depth)
        if pred.shape[-2:] != target.size:
            pred = F.interpolate(pred[:, None], size=target.size, mode="bilinear", align_corners=False)[:, 0]
        pred = pred.flatten(1).clamp_(max(self.min_depth, _POSITIVE), self.max_depth)
        sums = _per_image_sums(pred, target)
        has_pixels = sums[:, 0] > 0
        self.empty_images += (~has_pixels).sum()
        sums = sums[has_pixels]
        self.rows.append(sums)
        self.ids.append(ids.to(sums.device).reshape(-1)[has_pixels].double())

    def compute(self) -> dict[str, Tensor]:
        # a list in one process, one tensor after a distributed sync
        empty = isinstance(self.rows, list) and not self.rows
        rows = torch.zeros(0, 1, dtype=torch.float64) if empty else dim_zero_cat(self.rows)
        if rows.shape[0] == 0:
            warnings.warn("DepthMetrics.compute() called with no image holding a valid pixel: NaN", stacklevel=2)
            return {k: torch.tensor(math.nan, dtype=torch.float64) for k in METRIC_NAMES}
        self.last_count = rows.shape[0]
        self.last_pixels = int(rows[:, 0].sum().item())
        rows = rows[torch.argsort(dim_zero_cat(self.ids), stable=True)]
        if self.mode == "per_image":
            values = metrics_from_sums(rows).sum(0) / rows.shape[0]
        else:
            values = metrics_from_sums(rows.sum(0))
        return dict(zip(METRIC_NAMES, values.unbind(), strict=True))

    def reset(self) -> None:
        super().reset()
        self._seen = 0
