"""Baselines that see no image content: the best constant and the per-pixel position prior."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from depth_lightning.metrics import DepthMetrics
from depth_lightning.models.bins import DECODERS


def fit_baselines(train_depth: np.ndarray) -> dict[str, np.ndarray]:
    """Median training depth (a constant) and the per-pixel median training depth."""
    valid = np.isfinite(train_depth) & (train_depth > 0)
    if not valid.any():
        raise ValueError("the training frames hold no valid depth: cannot fit the baselines")
    constant = float(np.median(train_depth[valid]))
    with np.errstate(all="ignore"):
        prior = np.nanmedian(np.where(valid, train_depth, np.nan), axis=0)
    prior = np.where(np.isfinite(prior), prior, constant)
    return {"constant": np.full_like(prior, constant), "position_prior": prior}


@torch.no_grad()
def evaluate_with_baselines(module: Any, loader: Any, baselines: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Metrics on ``loader`` of the model's two decoders and of each baseline."""
    ev = module.cfg.data.eval
    names = [*DECODERS, *baselines]
    metrics = {n: DepthMetrics(ev.min_depth, ev.max_depth, crop=ev.crop, mode=ev.mode) for n in names}
    module.eval()
    device = module.device
    for batch in loader:
        depth = batch["depth"]
        target = metrics["soft"].prepare(depth)  # shared by every prediction of these images
        decoded = module.bins.decode(module(batch["image"].to(device)))
        for dec in DECODERS:
            metrics[dec].update(decoded[dec].float().cpu(), target)
        for name, map_ in baselines.items():
            pred = torch.from_numpy(map_).float()
            if pred.shape != depth.shape[-2:]:
                raise ValueError(f"baseline {name} is {tuple(pred.shape)}, ground truth {tuple(depth.shape[-2:])}")
            metrics[name].update(pred.expand_as(depth), target)
    return {n: {k: float(v) for k, v in m.compute().items()} for n, m in metrics.items()}


def format_table(results: dict[str, dict[str, float]], keys: tuple[str, ...] = ("abs_rel", "d1", "rmse")) -> str:
    lines = [f"{'':16s}" + "".join(f"{k:>10s}" for k in keys)]
    for name, vals in results.items():
        lines.append(f"{name:16s}" + "".join(f"{vals[k]:10.4f}" for k in keys))
    return "\n".join(lines)
