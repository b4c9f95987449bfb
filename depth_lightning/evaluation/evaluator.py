"""The evaluation engine: one object scores predictions against the ground truth under a protocol and
owns every number that comes out of it, with detectron2's shape: ``reset() / process(batch, outputs)
/ evaluate() -> EvaluationResult``.

Training's validation and test (through :class:`~depth_lightning.module.DepthModule`), ``evaluate``
and ``score`` all drive an :class:`Evaluator`; what it returns holds the final values, the per-image
record the intervals resample, the frames left out and the protocol card. Under every cap of the
protocol it scores each prediction it is given (the two decoders of the paper's model, or another
method's saved maps) and the baselines it holds (maps that see no image: the best constant, the
position prior), on the same pixels; with the model's uncertainty it also scores its sparsification,
and with the bin labels the pixel accuracy of Table 4.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from depth_lightning.core.errors import DataError, NonFiniteError
from depth_lightning.evaluation.alignment import Alignment
from depth_lightning.evaluation.keys import MetricKey, cap_of
from depth_lightning.evaluation.metrics import METRIC_NAMES, ArrivalOrder, DepthMetrics, ImageRows, aggregate
from depth_lightning.evaluation.per_image import PerImageRecord
from depth_lightning.evaluation.protocol import EvalProtocol, protocol_of
from depth_lightning.evaluation.sparsification import Sparsification
from depth_lightning.models.bins import DECODERS, IGNORE_INDEX

if TYPE_CHECKING:
    from depth_lightning.data.frames import FrameDataset

log = logging.getLogger(__name__)
SPLIT_NAMES = {"val": "validation", "test": "test"}


@dataclass
class EvaluationResult:
    """Everything one evaluation found.

    ``values``: float64 numbers keyed as they are logged under the split (``soft/abs_rel``,
    ``cap50/hard/rmse``, ``constant/d1``; the headline prediction's metrics also bare, ``abs_rel``;
    ``pixel_acc``; ``soft/ause_rmse``). ``record``: each image's sums, bin hits and sparsification
    curves. ``images``: images scored under the headline cap. ``empty_frames``: the frames left out for
    want of a valid ground-truth pixel, described; ``sparse_frames``: those left out for holding fewer
    than the minimum (``min_pixels``). ``card``: the protocol card (when the evaluation keeps per-image
    results and knows its frames)."""

    split: str
    dataset: str
    scored: tuple[str, ...]
    values: dict[str, float]
    record: PerImageRecord
    images: int
    empty_frames: list[str] = field(default_factory=list)
    card: dict[str, Any] | None = None
    sparse_frames: list[str] = field(default_factory=list)

    def intervals(self, method: Mapping[str, Any]) -> dict[str, list[float]]:
        """The bootstrap interval over images of every number, under ``method``: a config's
        ``intervals`` as :func:`~depth_lightning.evaluation.bootstrap.settings` checked them."""
        return self.record.intervals(method["resamples"], method["seed"], method["level"])

    def pixels(self, name: str) -> int:
        """Valid ground-truth pixels ``name`` was scored on under the headline cap."""
        return int(self.record.sums[name][1][:, 0].sum())


class Evaluator(nn.Module):
    """Scores predictions on a split under ``protocol``.

    Args:
        protocol: region, depth range, caps and aggregation.
        split: ``val`` or ``test``, for messages and the card.
        dataset: the dataset's name, for messages, tables and the card.
        predictions: the names of the depth maps each batch brings (the model's decoders, or
            ``predictions`` for another method's maps).
        headline: the prediction whose metrics are also reported bare (``abs_rel``); default: the first.
        num_bins: the model's K: also score the pixel accuracy of the bin labels (Table 4).
        per_image: keep what a test reports per image: bin hits, the uncertainty's sparsification
            (for the decoders, when the outputs hold ``uncertainty``), frame names and the card.
        baselines: depth maps scored beside the predictions, on the same pixels (fitted at the input
            size; brought to the predictions' size with area interpolation, then scored like them).
        alignment: how each prediction (and baseline) is aligned to the ground truth before it is
            scored, per image and cap (:class:`~depth_lightning.evaluation.alignment.Alignment`);
            the fitted scale and shift are kept per image.
        precision: what the predictions were computed in (``32-true``, ``bf16-mixed``), for the card.
    """

    def __init__(
        self,
        protocol: EvalProtocol,
        split: str = "test",
        dataset: str = "the data",
        predictions: Sequence[str] = DECODERS,
        headline: str | None = None,
        num_bins: int | None = None,
        per_image: bool = True,
        baselines: Mapping[str, Any] | None = None,
        ignore_index: int = IGNORE_INDEX,
        alignment: Alignment | None = None,
        precision: str | None = None,
    ) -> None:
        super().__init__()
        self.precision = precision
        self.alignment = alignment or Alignment()
        self.protocol, self.split, self.dataset = protocol, split, dataset
        self.predictions = tuple(predictions)
        self.headline = headline or self.predictions[0]
        if self.headline not in self.predictions:
            raise ValueError(f"the headline {self.headline!r} is not one of the predictions {self.predictions}")
        self.baselines = {name: torch.as_tensor(m).float()[None, None] for name, m in (baselines or {}).items()}
        scored = (*self.predictions, *self.baselines)
        # a fit needs its pixels (alignment.min_pixels); metrics alone need the protocol's minimum
        self.min_pixels = max(protocol.min_pixels, self.alignment.min_pixels if self.alignment.active else 1)
        settings = {"mode": protocol.aggregation, "truth_in_range": protocol.truth_in_range}
        settings["min_pixels"] = self.min_pixels
        self.metrics = nn.ModuleList(
            nn.ModuleDict({n: DepthMetrics(protocol.min_depth, cap, **settings) for n in scored})
            for cap in protocol.caps
        )
        fitted = scored if self.alignment.active else ()
        self.fits = nn.ModuleList(nn.ModuleDict({n: ImageRows() for n in fitted}) for _ in protocol.caps)
        self.per_image = per_image
        decoders = [d for d in DECODERS if d in self.predictions] if per_image else []
        self.sparsification = nn.ModuleDict({d: Sparsification() for d in decoders})
        self.ignore_index = ignore_index
        self.pixel_acc = MulticlassAccuracy(num_bins, average="micro", ignore_index=ignore_index) if num_bins else None
        self.bin_hits = ImageRows() if num_bins and per_image else None
        self.output_size: tuple[int, int] | None = None
        self.arrival = ArrivalOrder()

    def reset(self) -> None:
        """Forget every batch processed."""
        for metric in self.modules():
            if metric is not self and hasattr(metric, "reset"):
                metric.reset()
        self.arrival.reset()
        self.output_size = None

    @torch.no_grad()
    def process(self, batch: Mapping[str, Any], outputs: Mapping[str, Tensor]) -> None:
        """Score one batch.

        ``batch``: ``depth`` (B,H,W) in metres at the frames' resolution, optionally ``eval_mask``
        (B,H,W: the protocol's region of each frame) and ``index`` (B,: the images' ids; default: the
        order of arrival). ``outputs``: a (B,h,w) depth map per name of ``predictions``; optionally
        ``uncertainty`` (B,h,w), and ``bin`` with ``labels`` (B,h,w) for the bin-label accuracy."""
        depth = batch["depth"]
        predictions = {name: outputs[name] for name in self.predictions}
        self.output_size = tuple(predictions[self.headline].shape[-2:])
        ids = self.arrival.ids(batch.get("index"), depth.shape[0])
        self._refuse_invalid(predictions, ids)
        predictions.update(self._baseline_predictions(depth.shape[0], self.output_size, depth.device))
        for i, metrics in enumerate(self.metrics):
            # the ground truth prepared once per cap, for every prediction scored against it
            target = metrics[self.headline].prepare(depth, batch.get("eval_mask"))
            scored = self._aligned(predictions, target, i, ids)
            for name, pred in scored.items():
                metrics[name].update(pred, target, ids=ids)
            if i == 0 and "uncertainty" in outputs:
                for decoder, curves in self.sparsification.items():
                    curves.update(scored[decoder], outputs["uncertainty"], target, ids)
        if self.pixel_acc is not None and "bin" in outputs:
            self._score_bins(outputs["bin"], outputs["labels"], ids)

    def _aligned(self, predictions: Mapping[str, Tensor], target: Any, cap: int, ids: Tensor) -> dict[str, Tensor]:
        """The predictions as they are scored under cap ``cap``: aligned when an alignment is set (at
        the ground truth's size, its fits kept per image), else as they are."""
        if not self.alignment.active:
            return dict(predictions)
        out = {}
        for name, pred in predictions.items():
            aligned, fits = self.alignment.align(
                pred, target.valid, target.depth, target.size, self.protocol.caps[cap], self.protocol.fit_max_resolution
            )
            out[name] = aligned.reshape(-1, *target.size)
            self.fits[cap][name].update(fits, ids)
        return out

    def _refuse_invalid(self, predictions: Mapping[str, Tensor], ids: Tensor) -> None:
        """A NaN, inf or (unless an affine alignment will fit it) non-positive prediction is never
        scored as a number (clipping would hide it)."""
        for name, pred in predictions.items():
            ok = torch.isfinite(pred) & (pred > 0) if self.alignment.positive_only else torch.isfinite(pred)
            bad = (~ok).flatten(1).sum(1)
            if bad.any():
                images = ", ".join(f"{int(i)} ({int(n)} px)" for i, n in zip(ids, bad, strict=True) if n)
                what = "NaN, inf or non-positive depth" if self.alignment.positive_only else "NaN or inf"
                raise NonFiniteError(
                    f"{self.dataset} {self.split}: the {name!r} predictions hold {what} "
                    f"in image(s) {images} (index in the split's list); nothing of this split is reported"
                )

    def _score_bins(self, bins: Tensor, labels: Tensor, ids: Tensor) -> None:
        self.pixel_acc.update(bins, labels)
        if self.bin_hits is not None:
            labelled = labels != self.ignore_index
            hits = ((bins == labels) & labelled).flatten(1).sum(1)
            self.bin_hits.update(torch.stack([hits, labelled.flatten(1).sum(1)], 1).double(), ids)

    def _baseline_predictions(self, batch: int, size: tuple[int, int], device: torch.device) -> dict[str, Tensor]:
        out = {}
        for name, map_ in self.baselines.items():
            if tuple(map_.shape[-2:]) != size:
                self.baselines[name] = map_ = F.interpolate(map_, size=size, mode="area")
            out[name] = map_.to(device)[:, 0].expand(batch, *size)
        return out

    def evaluate(
        self,
        frames: FrameDataset | None = None,
        prediction: Mapping[str, Any] | None = None,
        unscored: Sequence[str] = (),
    ) -> EvaluationResult:
        """Every number of the batches processed since :meth:`reset`, gathered from every process.
        ``frames``: the split's dataset, which names the images (frame, list line; the frames left out)
        and gives the protocol card its source. ``prediction``: how the predictions reached the ground
        truth, for the card (default: the network's, upsampled bilinearly); ``unscored``: frames given
        no prediction at all (``score``'s missing files), left out on the card."""
        record = PerImageRecord(self.protocol.aggregation)
        values: dict[str, float] = {}
        for i, metrics in enumerate(self.metrics):
            cap = cap_of(self.protocol.caps, i)
            for name, metric in metrics.items():
                ids, sums = metric.images()
                if i == 0 and len(ids) == 0:
                    raise self._nothing_to_score(metric)
                scope = str(MetricKey(None, name, cap))
                record.sums[scope] = (ids, sums)
                if name in self.fits[i]:
                    record.fits[scope] = self.fits[i][name].compute()
                if len(ids):
                    for key, value in aggregate(torch.from_numpy(sums), self.protocol.aggregation).items():
                        values[str(MetricKey(key, name, cap))] = float(value)
        values.update({m: values[str(MetricKey(m, self.headline))] for m in METRIC_NAMES})
        if self.pixel_acc is not None:  # every process takes part in the sum, also one that saw no batch
            values["pixel_acc"] = float(self.pixel_acc.compute())
        if self.bin_hits is not None:
            record.bin_hits = self.bin_hits.compute()
        for decoder, curves in self.sparsification.items():
            record.sparsification[decoder] = curves.compute()
            values.update({str(MetricKey(k, decoder)): v for k, v in record.ause(decoder).items()})
        empty, sparse = self._left_out(frames)
        images = len(record.sums[self.headline][0])
        card = None
        if self.per_image:
            self._name_images(record, frames)
            if frames is not None:
                card = self._card(frames, prediction, images, len(empty) + len(sparse) + len(unscored), len(sparse))
        scored = (*self.predictions, *self.baselines)
        return EvaluationResult(self.split, self.dataset, scored, values, record, images, empty, card, sparse)

    def _nothing_to_score(self, metric: DepthMetrics) -> DataError:
        sparse = len(metric.sparse_images())
        fewer = f", {sparse} with fewer than {self.min_pixels} valid pixels (min_pixels)" if sparse else ""
        return DataError(
            f"{SPLIT_NAMES.get(self.split, self.split)} split of {self.dataset}: no image holds enough valid "
            f"ground-truth pixels ({len(metric.empty_images())} image(s) empty under {metric.min_depth} < depth < "
            f"{metric.max_depth} and its region{fewer}): there is nothing to score; check its depth files, their "
            "unit, and data.protocol"
        )

    def _left_out(self, frames: FrameDataset | None) -> tuple[list[str], list[str]]:
        """Name the frames left out (headline cap): without a valid ground-truth pixel, and with fewer
        than ``min_pixels`` (refused with ``alignment.too_few=refuse``)."""
        metric = self.metrics[0][self.headline]
        found = []
        for ids, why in (
            (metric.empty_images(), "without a valid ground-truth pixel"),
            (metric.sparse_images(), f"with fewer than {self.min_pixels} valid ground-truth pixels"),
        ):
            names = [frames.describe(i) if frames is not None else f"sample {i}" for i in ids]
            shown = "; ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            if names and why.startswith("with") and self.alignment.active and self.alignment.too_few == "refuse":
                raise DataError(
                    f"{self.split} split of {self.dataset}: {len(names)} frame(s) {why} (alignment.min_pixels): "
                    f"{shown}; alignment.too_few=leave_out leaves them out of the means"
                )
            if names:
                log.warning("%s: %d frame(s) %s, left out of the metrics: %s", self.split, len(names), why, shown)
            found.append(names)
        return found[0], found[1]

    @staticmethod
    def _name_images(record: PerImageRecord, frames: FrameDataset | None) -> None:
        for i in record.image_ids():
            record.frames[i] = frames.frame_name(i) if frames is not None else f"{i:05d}"
            record.lines[i] = frames.list_line(i) if frames is not None else None

    def _card(
        self, frames: FrameDataset, prediction: Mapping[str, Any] | None, evaluated: int, left_out: int, sparse: int
    ) -> dict[str, Any]:
        """The protocol card of results on ``frames``, the one place it is made: the protocol's own
        entries (:meth:`EvalProtocol.card`: the split's list and ground truth, the region's box on an
        original frame, the predictions' resolution), how predictions reached the ground truth, the
        alignment, the precision, and how many frames were evaluated and left out."""
        original = frames.load(0)[1].shape[:2]
        card = self.protocol.card(self.dataset, self.split, frames.source(), original, self.output_size)
        if prediction is not None:
            card["prediction"] = dict(prediction)
        card["alignment"] = self.alignment.card(self.protocol.fit_max_resolution)
        if self.precision is not None:
            card["precision"] = self.precision
        card["frames_evaluated"], card["frames_left_out"] = evaluated, left_out
        if self.min_pixels > 1:
            card["min_pixels"], card["frames_below_min_pixels"] = self.min_pixels, sparse
        return card


def evaluator_for(
    datamodule: Any,
    split: str,
    num_bins: int | None = None,
    headline: str = "soft",
    baselines: Mapping[str, np.ndarray] | None = None,
    alignment: Alignment | None = None,
    precision: str | None = None,
) -> Evaluator:
    """The evaluator of ``split`` of a :class:`~depth_lightning.data.DepthDataModule` (or of the default
    protocol when there is none): both decoders; per-image results on the test split."""
    return Evaluator(
        protocol_of(datamodule),
        split=split,
        dataset=getattr(datamodule, "name", "the data"),
        headline=headline,
        num_bins=num_bins,
        per_image=split == "test",
        baselines=baselines,
        alignment=alignment,
        precision=precision,
    )
