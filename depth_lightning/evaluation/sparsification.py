"""Evaluating the predicted uncertainty: sparsification curves and the area under the sparsification
error (AUSE), as Ilg et al. (ECCV 2018) and Poggi et al. (CVPR 2020) evaluate depth uncertainty.

For each image, the pixels the model is least sure of are removed first (a fraction f of the valid
pixels, f = 0, 0.02, ..., 0.98) and the error of the rest is measured: abs rel (mean |p - g| / g) and
RMSE (metres). The oracle removes the pixels of largest true error first: the best any ordering can
do. Sparsification error = curve - oracle; AUSE = its area over f (trapezoids). 0 means the
uncertainty orders pixels exactly as their errors; a random order gives about the area between the
flat full-image error and the oracle. Curves are averaged over images, as the metrics are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from depth_lightning.evaluation.metrics import ScoredTarget, scored_prediction

FRACTIONS = np.round(np.arange(0, 1, 0.02), 2)  # share of the valid pixels removed
ERRORS = ("abs_rel", "rmse")
ORDERS = ("uncertainty", "oracle")


def curves(error: Tensor, uncertainty: Tensor, fractions: np.ndarray = FRACTIONS) -> dict[str, Tensor]:
    """One image's sparsification curves: ``{"abs_rel/uncertainty": (F,), "abs_rel/oracle": ...,
    "rmse/...": ...}`` from its valid pixels' ``error`` pair ``(2, n)`` = (abs rel error, squared
    error) and ``uncertainty`` (n,)."""
    n = error.shape[1]
    keep = torch.as_tensor(n - np.floor(fractions * n).astype(np.int64), device=error.device).clamp_min(1)
    out = {}
    by_uncertainty = torch.argsort(uncertainty, stable=True)  # most certain first: the kept pixels lead
    for k, name in enumerate(ERRORS):
        for order in ORDERS:
            e = error[k][by_uncertainty] if order == "uncertainty" else torch.sort(error[k]).values
            mean_kept = torch.cumsum(e.double(), 0)[keep - 1] / keep
            out[f"{name}/{order}"] = mean_kept.sqrt() if name == "rmse" else mean_kept
    return out


def ause(curve: np.ndarray, oracle: np.ndarray, fractions: np.ndarray = FRACTIONS) -> float:
    """Area under the sparsification error ``curve - oracle`` over the removed ``fractions``."""
    diff = np.asarray(curve, dtype=np.float64) - np.asarray(oracle, dtype=np.float64)
    return float(np.sum((diff[1:] + diff[:-1]) / 2 * np.diff(fractions)))


class Sparsification(Metric):
    """Per-image sparsification curves of a prediction and its uncertainty, on the pixels and with
    the clipping the depth metrics use (:class:`~depth_lightning.evaluation.metrics.DepthMetrics`); gathered
    across processes and ordered by image id like them."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("rows", [], dist_reduce_fx="cat")  # per image: the curves, concatenated
        self.add_state("ids", [], dist_reduce_fx="cat")

    def update(self, pred: Tensor, uncertainty: Tensor, target: ScoredTarget, ids: Tensor) -> None:
        p = scored_prediction(pred.reshape(-1, *pred.shape[-2:]), target)
        u = uncertainty.reshape(-1, 1, *uncertainty.shape[-2:]).float()
        if u.shape[-2:] != target.size:
            u = F.interpolate(u, size=target.size, mode="bilinear", align_corners=False)
        u = u.flatten(1)
        rows, kept = [], []
        for i in range(p.shape[0]):
            valid = target.valid[i]
            if not valid.any():
                continue
            g, pi = target.depth[i][valid], p[i][valid]
            error = torch.stack([(pi - g).abs() / g, (pi - g).square()])
            c = curves(error, u[i][valid])
            rows.append(torch.cat([c[f"{e}/{o}"] for e in ERRORS for o in ORDERS]))
            kept.append(i)
        if rows:
            self.rows.append(torch.stack(rows))
            self.ids.append(ids.reshape(-1)[kept].to(self.device).double())

    def compute(self) -> dict[str, np.ndarray]:
        """``{"ids": (N,), "abs_rel/uncertainty": (N, F), ...}``: every image's curves, in id order."""
        if isinstance(self.rows, list) and not self.rows:
            return {"ids": np.zeros(0, dtype=np.int64)}
        ids = dim_zero_cat(self.ids)
        order = torch.argsort(ids, stable=True)
        rows = dim_zero_cat(self.rows)[order].cpu().numpy()
        out: dict[str, np.ndarray] = {"ids": ids[order].long().cpu().numpy()}
        width = len(FRACTIONS)
        for j, key in enumerate(f"{e}/{o}" for e in ERRORS for o in ORDERS):
            out[key] = rows[:, j * width : (j + 1) * width]
        return out


def summarise(per_image: dict[str, np.ndarray]) -> dict[str, object]:
    """Mean curves and AUSE (of the mean curves, equal to the mean of the images' AUSE), plus the AUSE
    of a random order in expectation (the flat full-image error against the oracle)."""
    out: dict[str, object] = {"fractions": FRACTIONS.tolist(), "images": int(len(per_image["ids"]))}
    for e in ERRORS:
        curve, oracle = per_image[f"{e}/uncertainty"].mean(0), per_image[f"{e}/oracle"].mean(0)
        out[e] = {"uncertainty": curve.tolist(), "oracle": oracle.tolist()}
        out[f"ause_{e}"] = ause(curve, oracle)
        out[f"ause_random_{e}"] = ause(np.full_like(oracle, curve[0]), oracle)
    return out


def per_image_ause(per_image: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each image's AUSE for abs rel and RMSE: ``{"ause_abs_rel": (N,), "ause_rmse": (N,)}``."""
    width = np.diff(FRACTIONS)
    out = {}
    for e in ERRORS:
        diff = per_image[f"{e}/uncertainty"] - per_image[f"{e}/oracle"]
        out[f"ause_{e}"] = ((diff[:, 1:] + diff[:, :-1]) / 2 * width).sum(1)
    return out
