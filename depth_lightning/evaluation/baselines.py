"""Baselines that see no image content: the best constant and the per-pixel position prior."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import torch

from depth_lightning.evaluation.evaluator import Evaluator
from depth_lightning.evaluation.keys import MetricKey
from depth_lightning.evaluation.metrics import METRIC_NAMES
from depth_lightning.evaluation.protocol import EvalProtocol, protocol_of
from depth_lightning.evaluation.tables import format_table
from depth_lightning.models.bins import DECODERS

log = logging.getLogger(__name__)


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
    module: Any, loader: Any, baselines: dict[str, np.ndarray], protocol: EvalProtocol, dataset: str = "the data"
) -> dict[str, dict[str, float]]:
    """Metrics on ``loader`` of the model's two decoders and of each baseline, under ``protocol``
    (its headline cap) and on the same pixels: each frame's region and valid ground truth, scored by
    one :class:`~depth_lightning.evaluation.evaluator.Evaluator`. Baselines are scored at the model's
    resolution: each map, fitted at the input size, is brought to the model's output size, then
    upsampled to the ground truth exactly as the model's predictions are."""
    evaluator = Evaluator(protocol, split="val", dataset=dataset, per_image=False, baselines=baselines)
    module.eval()
    for batch in loader:
        if "image" not in batch:  # every sample of the batch was skipped (data.skip_bad_samples)
            continue
        decoded = module.bins.decode(module(batch["image"].to(module.device)))
        evaluator.process(batch, {dec: decoded[dec].float().cpu() for dec in DECODERS})
    result = evaluator.evaluate()
    table = {}
    for name in result.scored:  # the same pixels for every entry
        table[name] = {m: result.values[str(MetricKey(m, name))] for m in METRIC_NAMES} | {
            "pixels": result.pixels(name)
        }
    return table


def compare_with_baselines(
    module: Any, datamodule: Any, printing: bool = True
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A trained model against the best constant and the position prior on the validation split
    (printed by the process that is ``printing``, which alone computes the table), and the baselines'
    maps, to be scored at test too. A failure to compute them never fails a finished run: it is
    returned as the table's ``error`` instead."""
    try:
        maps = fit_baselines(datamodule.training_depth_sample())  # every rank: all score them at test
        if not printing:
            return None, maps
        val = datamodule.val_dataloader()
        table = evaluate_with_baselines(module, val, maps, protocol_of(datamodule), datamodule.name)
    except Exception as err:  # a finished run is not failed by its comparison table
        log.warning("the baselines could not be computed (%r); the run's own results stand", err)
        return {"error": repr(err)[:500]}, None
    c, p, s = table["constant"]["abs_rel"], table["position_prior"]["abs_rel"], table["soft"]["abs_rel"]
    print(f"\nValidation set ({datamodule.name}), model vs baselines that see no image content:")
    print(format_table(table, ("abs_rel", "d1", "rmse")))
    print(f"model soft abs rel / constant's: {s / c:.3f}; / position prior's: {s / p:.3f}\n")
    return table, maps
