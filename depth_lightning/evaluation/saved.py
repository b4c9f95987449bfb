"""Another method's saved depth maps: where they are, how they are read and checked, and how they are
scored by an :class:`~depth_lightning.evaluation.evaluator.Evaluator` on a dataset's test split
(``python -m depth_lightning.score`` and ``benchmark``).

The prediction of the frame whose RGB file is ``<root>/<path>.<ext>`` is ``<predictions>/<path>.npy``
(float metres) or ``<predictions>/<path>.png`` (16-bit, ``scale`` units per metre); datasets without
files use the test index, ``<predictions>/00042.npy``. A prediction of another size than the original
frame, but of its aspect, is resized to it (bilinear in log depth; linearly for a relative map).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from depth_lightning.core.config import check_choice
from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.data.io import read_depth_png
from depth_lightning.evaluation.alignment import Alignment, alignment_from
from depth_lightning.evaluation.evaluator import EvaluationResult, Evaluator
from depth_lightning.evaluation.protocol import protocol_of

log = logging.getLogger(__name__)
PREDICTIONS = "predictions"  # the scored method's key in per_image.csv and the intervals
ASPECT_TOLERANCE = 0.01  # a prediction's width/height may differ this much (relative) from its frame's
UNITS_RATIO = 10.0  # median prediction / median ground truth beyond this factor: wrong units, not a bad model


@dataclass
class PredictionChecks:
    """What was wrong with the saved predictions, file by file."""

    invalid: dict[str, int] = field(default_factory=dict)  # file -> non-finite or non-positive pixels
    resized: dict[str, str] = field(default_factory=dict)  # file -> "HxW -> HxW"
    ratios: list[float] = field(default_factory=list)  # per file at the frame's size: median pred / truth

    positive: bool = True  # whether a prediction must be positive depth (not under an affine alignment)

    def check(self, pred: np.ndarray, depth: np.ndarray, path: str) -> None:
        """Count the invalid pixels of one prediction, refuse another aspect, note a resize and the units."""
        (h, w), (H, W) = pred.shape, depth.shape[:2]
        if abs((w / h) / (W / H) - 1) > ASPECT_TOLERANCE:
            raise DataError(
                f"{path}: a {h}x{w} prediction for a {H}x{W} frame (aspect {w / h:.3f}, the frame's {W / H:.3f}); "
                "stretching it would misplace every pixel: save it at the frame's size (or its aspect)"
            )
        if (h, w) != (H, W):
            self.resized[path] = f"{h}x{w} -> {H}x{W}"
        bad = int((~(np.isfinite(pred) & ((pred > 0) | (not self.positive)))).sum())
        if bad:
            self.invalid[path] = bad
        if (h, w) == (H, W):  # units: the median ratio to the ground truth where both hold depth
            both = np.isfinite(pred) & (pred > 0) & np.isfinite(depth) & (depth > 0)
            if both.any():
                self.ratios.append(float(np.median(pred[both] / depth[both])))

    def refuse_invalid(self, policy: str, total: int) -> None:
        if self.invalid and policy == "refuse":
            named = ", ".join(f"{p} ({n} px)" for p, n in list(self.invalid.items())[:5])
            what = "NaN, inf, zero or negative depth" if self.positive else "NaN or inf"
            raise DataError(
                f"{len(self.invalid)} of {total} predictions hold {what}: {named}; "
                "fix them, or score them clipped to the depth range with invalid_predictions=clip"
            )

    def refuse_units(self, folder: Path, scale: float) -> None:
        ratio = float(np.median(self.ratios)) if self.ratios else 1.0
        if not 1 / UNITS_RATIO <= ratio <= UNITS_RATIO:
            raise DataError(
                f"predictions={folder}: the predictions' median depth is {ratio:.3g} times the ground truth's: "
                f"saved in other units? 16-bit PNGs are read as value / scale (scale={scale:g}; e.g. "
                f"scale={scale * ratio:.4g} would match); check_units=false scores them as they are"
            )

    def describe(self, policy: str) -> dict[str, Any]:
        """For the protocol card."""
        return {
            "invalid_predictions": policy,
            "files_with_invalid_pixels": len(self.invalid),
            "invalid_pixels": sum(self.invalid.values()),
            "files_resized": len(self.resized),
        }


def prediction_file(folder: Path, name: str) -> Path | None:
    """The saved prediction of frame ``name`` (``.npy`` before ``.png``), or None when there is none."""
    return next((p for p in (folder / f"{name}.npy", folder / f"{name}.png") if p.is_file()), None)


def read_prediction(path: Path, scale: float) -> np.ndarray:
    """A saved prediction in metres: float ``.npy``, or a 16-bit PNG of ``scale`` units per metre."""
    if path.suffix == ".png":
        return read_depth_png(path, scale)
    try:
        depth = np.load(path).astype(np.float32)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    depth = depth.squeeze()
    if depth.ndim != 2:
        raise DataError(f"{path}: expected an (H, W) depth map in metres, got shape {depth.shape}")
    return depth


def to_size(depth: np.ndarray, size: tuple[int, int], log_depth: bool = True) -> np.ndarray:
    """A depth map resized to ``size``, bilinearly in log depth (no depth stays no depth); with
    ``log_depth=False`` bilinearly in its values (a relative map, of any sign)."""
    if depth.shape == size:
        return depth
    if not log_depth:
        resized = F.interpolate(torch.from_numpy(depth)[None, None], size=size, mode="bilinear", align_corners=False)
        return resized[0, 0].numpy()
    valid = np.isfinite(depth) & (depth > 0)
    log_depth = torch.from_numpy(np.log(np.where(valid, depth, 1.0)))[None, None]
    weight = torch.from_numpy(valid.astype(np.float32))[None, None]
    log_depth = F.interpolate(log_depth * weight, size=size, mode="bilinear", align_corners=False)
    weight = F.interpolate(weight, size=size, mode="bilinear", align_corners=False)
    out = torch.exp(log_depth / weight.clamp_min(1e-6))
    return torch.where(weight > 0.5, out, 0.0)[0, 0].numpy()


@dataclass(frozen=True)
class ScoreSettings:
    """How saved predictions are read and checked (``score``'s and ``benchmark``'s settings)."""

    scale: float = 1000.0
    invalid_predictions: str = "refuse"
    alignment: Alignment = field(default_factory=Alignment)
    allow_missing: bool = False
    check_units: bool = True


def score_settings(cfg: DictConfig) -> ScoreSettings:
    """``scale``, ``invalid_predictions`` and ``alignment``, refused by name before any file is read."""
    scale = cfg.scale
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ConfigError(f"config error: scale: {scale!r} must be a positive number of PNG units per metre")
    policy = cfg.get("invalid_predictions", "refuse")
    check_choice(policy, "invalid_predictions", ("refuse", "clip"))
    alignment = alignment_from(cfg.get("alignment"))
    return ScoreSettings(float(scale), policy, alignment, bool(cfg.allow_missing), bool(cfg.get("check_units", True)))


def score_predictions(datamodule: Any, folder: Path, settings: ScoreSettings) -> tuple[EvaluationResult, list[str]]:
    """The predictions in ``folder`` scored on the test split of ``datamodule``; the frames without one."""
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    alignment = settings.alignment
    evaluator = Evaluator(
        protocol_of(datamodule), split="test", dataset=datamodule.name, predictions=[PREDICTIONS], alignment=alignment
    )
    checks = PredictionChecks(positive=alignment.positive_only)
    missing = score_frames(evaluator, dataset, folder, settings.scale, checks)
    if len(missing) == len(dataset):  # nothing to score: the folder, not the ground truth, is at fault
        raise DataError(
            f"predictions={folder}: holds no prediction of any of the {len(dataset)} test frames of {datamodule.name} "
            f"(each is <predictions>/<frame name>.npy|.png, e.g. {folder / missing[0]}.png); is it the right folder?"
        )
    if missing and not settings.allow_missing:
        raise DataError(
            f"predictions={folder}: no prediction for {len(missing)} of {len(dataset)} test frames, e.g. "
            f"{', '.join(str(folder / m) + '.png|.npy' for m in missing[:3])}; allow_missing=true scores the others"
        )
    checks.refuse_invalid(settings.invalid_predictions, len(dataset) - len(missing))
    if settings.check_units and not alignment.active:  # an aligned map has no units of its own
        checks.refuse_units(folder, settings.scale)
    resized = "linearly (a relative map)" if alignment.active else "bilinearly in log depth"
    prediction = {
        "resolution": "as saved",
        "to_ground_truth": f"resized to each frame {resized} (depth_lightning.score), aligned as the card's "
        "alignment says, clipped to [min_depth, cap]; ground truth valid where min_depth < g < cap, finite, "
        "inside the region",
        **checks.describe(settings.invalid_predictions),
    }
    result = evaluator.evaluate(dataset, prediction, missing)
    return result, missing


def score_frames(evaluator: Evaluator, dataset: Any, folder: Path, scale: float, checks: PredictionChecks) -> list[str]:
    """Hand every test frame that has a prediction to ``evaluator`` (each checked by ``checks``); the
    names of those without one."""
    missing: list[str] = []
    for index in range(len(dataset)):
        name = dataset.frame_name(index)
        path = prediction_file(folder, name)
        if path is None:
            missing.append(name)
            continue
        pred = read_prediction(path, scale)
        _, depth = dataset.load(index)
        original = depth.shape[:2]
        checks.check(pred, depth, str(path))
        # counted above; what is scored (invalid_predictions=clip) is clipped to the range by the evaluator
        pred = _scorable(pred, original, evaluator.alignment)
        (pred, depth), region = dataset.cropped(index, original, pred, depth)  # as for the suite's own model
        batch = {"depth": torch.from_numpy(depth)[None], "eval_mask": region[None], "index": torch.tensor([index])}
        evaluator.process(batch, {PREDICTIONS: torch.from_numpy(pred)[None]})
    if checks.resized:
        named = ", ".join(f"{p} ({s})" for p, s in list(checks.resized.items())[:3])
        log.warning("%d prediction(s) resized to their frame (bilinear in log depth): %s", len(checks.resized), named)
    return missing


def _scorable(pred: np.ndarray, size: tuple[int, int], alignment: Alignment) -> np.ndarray:
    """A checked prediction as the evaluator takes it: finite, at the frame's size, positive unless an
    affine alignment fits it (counted by the checks; with invalid_predictions=clip the evaluator clips
    what is scored to the range)."""
    finite = np.nan_to_num(pred, nan=0.0, posinf=np.finfo(np.float32).max, neginf=0.0)
    if not alignment.positive_only:
        return to_size(finite, size, log_depth=False)
    return np.maximum(to_size(finite, size), np.finfo(np.float32).tiny)
