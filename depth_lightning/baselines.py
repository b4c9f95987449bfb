"""Baselines that see no image content: the best constant and the per-pixel position prior."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from depth_lightning.metrics import DepthMetrics
from depth_lightning.models.bins import DECODERS
from depth_lightning.protocol import EvalProtocol


def fit_baselines(train_depth: np.ndarray) -> dict[str, np.ndarray]:
    """Median training depth (a constant) and the per-pixel median training depth."""
    valid = np.isfinite(train_depth) & (train_depth > 0)
    if not valid.any():
        raise ValueError("the training frames hold no valid depth: cannot fit the baselines")
    constant = float(np.median(train_depth[valid]))
    with warnings.catch_warnings():  # pixels never valid in any frame: NaN, replaced below
        warnings.simplefilter("ignore", RuntimeWarning)
        prior = np.nanmedian(np.where(valid, train_depth, np.nan), axis=0)
    prior = np.where(np.isfinite(prior), prior, constant)
    return {"constant": np.full_like(prior, constant), "position_prior": prior}


@torch.no_grad()
def evaluate_with_baselines(
    module: Any, loader: Any, baselines: dict[str, np.ndarray], protocol: EvalProtocol
) -> dict[str, dict[str, float]]:
    """Metrics on ``loader`` of the model's two decoders and of each baseline, under ``protocol``
    (its headline cap) and on the same pixels: each frame's region and valid ground truth.
    Baselines are scored at the model's resolution: each map, fitted at the input size, is brought to
    the model's output size, then upsampled to the ground truth exactly as the model's predictions are."""
    p = protocol
    names = [*DECODERS, *baselines]
    metrics = {n: DepthMetrics(p.min_depth, p.caps[0], mode=p.aggregation) for n in names}
    maps = {n: torch.from_numpy(m).float()[None, None] for n, m in baselines.items()}
    module.eval()
    for batch in loader:
        if "image" not in batch:  # every sample of the batch was skipped (data.skip_bad_samples)
            continue
        depth = batch["depth"]
        target = metrics["soft"].prepare(depth, batch.get("eval_mask"))  # shared by every prediction
        decoded = module.bins.decode(module(batch["image"].to(module.device)))
        for dec in DECODERS:
            metrics[dec].update(decoded[dec].float().cpu(), target)
        out_size = tuple(decoded["soft"].shape[-2:])
        for name, map_ in maps.items():
            if tuple(map_.shape[-2:]) != out_size:
                maps[name] = map_ = F.interpolate(map_, size=out_size, mode="area")
            metrics[name].update(map_[:, 0].expand(depth.shape[0], *out_size), target)
    results = {n: {k: float(v) for k, v in m.compute().items()} for n, m in metrics.items()}
    for name, metric in metrics.items():
        results[name]["pixels"] = metric.last_pixels  # the same for every entry: the same pixels
    return results
