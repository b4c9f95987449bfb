"""Bootstrap intervals over test images, computed from each image's sums (cheap: no pixel is revisited).

A resample draws the test images with replacement (``numpy.random.default_rng(seed).integers(0, n,
(resamples, n))``); a metric of the resample is the metric of the drawn images under the protocol's
aggregation (the mean of the images' metrics, or the metric of their pooled sums). The interval is the
percentile interval of the resampled values. A paired interval applies the same draws to two sets of
results on the same images and takes the percentiles of their difference: a model against itself
gives [0, 0].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from depth_lightning.evaluation.metrics import metrics_from_sums

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def settings(given: dict | None = None) -> dict:
    """The interval settings of a config's ``intervals`` (missing ones: the defaults), checked, with
    the method named: what ``metrics.json`` records under ``intervals``."""
    out = {"resamples": RESAMPLES, "seed": SEED, "level": LEVEL, **dict(given or {})}
    if out["resamples"] < 1000:
        raise ValueError(f"intervals.resamples={out['resamples']}: use at least 1000 resamples")
    if not 0 < out["level"] < 1:
        raise ValueError(f"intervals.level={out['level']}: a coverage in (0, 1), e.g. 0.95")
    out["method"] = f"percentile bootstrap over test images ({100 * out['level']:g} %)"
    return out


def resample_counts(images: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, images)``: how often each image is drawn in each resample."""
    if images < 1:
        raise ValueError("a bootstrap needs at least one image")
    draws = np.random.default_rng(seed).integers(0, images, size=(resamples, images))
    counts = np.zeros((resamples, images))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1)
    return counts


def depth_statistic(sums: np.ndarray, aggregation: str) -> Callable[[np.ndarray], np.ndarray]:
    """The depth metrics (:data:`~depth_lightning.evaluation.metrics.METRIC_NAMES`) of weighted images:
    ``counts (R, N) -> (R, metrics)``, for per-image sums ``(N, len(SUMS))``."""
    sums = np.asarray(sums, dtype=np.float64)
    if aggregation == "per_image":
        per_image = metrics_from_sums(torch.from_numpy(sums)).numpy()
        return lambda counts: counts @ per_image / counts.sum(1, keepdims=True)
    return lambda counts: metrics_from_sums(torch.from_numpy(counts @ sums)).numpy()


def mean_statistic(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The mean over weighted images of per-image values ``(N, k)`` (e.g. each image's AUSE)."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return lambda counts: counts @ values / counts.sum(1, keepdims=True)


def ratio_statistic(counts_per_image: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Pooled ratio ``sum(a) / sum(b)`` of per-image ``(N, 2)`` counts (pixel accuracy of the bin labels)."""
    pairs = np.asarray(counts_per_image, dtype=np.float64)
    return lambda counts: (counts @ pairs[:, :1]) / (counts @ pairs[:, 1:2]).clip(min=1)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """``(2, k)``: the lower and upper percentiles of resampled values ``(R, k)``."""
    tail = 100 * (1 - level) / 2
    return np.percentile(values, [tail, 100 - tail], axis=0)


def interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    images: int,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> np.ndarray:
    """``(2, k)`` percentile interval of ``statistic`` over images resampled with replacement."""
    return percentile_interval(statistic(resample_counts(images, resamples, seed)), level)


def paired_interval(
    first: Sequence[Callable[[np.ndarray], np.ndarray]],
    second: Sequence[Callable[[np.ndarray], np.ndarray]],
    images: int,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> tuple[np.ndarray, np.ndarray]:
    """Difference ``mean(first) - mean(second)`` on the same ``images`` (each a list over seeds, all
    scored on the same images in the same order): ``(difference (k,), interval (2, k))``."""
    counts = resample_counts(images, resamples, seed)
    whole = np.ones((1, images))

    def mean_of(stats: Sequence[Callable[[np.ndarray], np.ndarray]], c: np.ndarray) -> np.ndarray:
        return np.mean([s(c) for s in stats], axis=0)

    difference = (mean_of(first, whole) - mean_of(second, whole))[0]
    return difference, percentile_interval(mean_of(first, counts) - mean_of(second, counts), level)
