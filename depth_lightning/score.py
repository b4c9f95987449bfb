"""``python -m depth_lightning.score predictions=<folder> data=<dataset> [data.dataset.root=...]``.

Scores any method's saved depth maps on a dataset's test list under exactly the suite's protocol
(the region on the original frame, depth range, caps, per-image aggregation), so that other methods
are compared on the same footing. The prediction of the frame whose RGB file is ``<root>/<path>.<ext>``
is ``<predictions>/<path>.npy`` (float metres) or ``<predictions>/<path>.png`` (16-bit,
``scale`` units per metre: 1000 for millimetres, 256 for KITTI's convention); datasets without
files (NYU labelled .mat, synthetic) use the test index, ``<predictions>/00042.npy``. A prediction of
another size than the original frame is resized to it (bilinear in log depth).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from depth_lightning.config import CONF_DIR, build
from depth_lightning.data.io import read_depth_png
from depth_lightning.evaluation.evaluator import Evaluator
from depth_lightning.evaluation.results import record_test
from depth_lightning.run.errors import DataError, one_line_errors
from depth_lightning.run.files import write_json

log = logging.getLogger(__name__)
PREDICTIONS = "predictions"  # the scored method's key in per_image.csv and the intervals


def read_prediction(folder: Path, name: str, scale: float) -> np.ndarray | None:
    """The saved prediction of frame ``name`` in metres, or None when there is none."""
    npy, png = folder / f"{name}.npy", folder / f"{name}.png"
    if npy.is_file():
        try:
            depth = np.load(npy).astype(np.float32)
        except (OSError, ValueError) as err:
            raise DataError(f"{npy}: unreadable ({err})") from None
        depth = depth.squeeze()
        if depth.ndim != 2:
            raise DataError(f"{npy}: expected an (H, W) depth map in metres, got shape {depth.shape}")
        return depth
    if png.is_file():
        return read_depth_png(png, scale)
    return None


def to_size(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A depth map resized to ``size``, bilinearly in log depth (no depth stays no depth)."""
    if depth.shape == size:
        return depth
    valid = np.isfinite(depth) & (depth > 0)
    log_depth = torch.from_numpy(np.log(np.where(valid, depth, 1.0)))[None, None]
    weight = torch.from_numpy(valid.astype(np.float32))[None, None]
    log_depth = F.interpolate(log_depth * weight, size=size, mode="bilinear", align_corners=False)
    weight = F.interpolate(weight, size=size, mode="bilinear", align_corners=False)
    out = torch.exp(log_depth / weight.clamp_min(1e-6))
    return torch.where(weight > 0.5, out, 0.0)[0, 0].numpy()


def score(cfg: DictConfig) -> dict[str, Any]:
    """The test split's metrics of the predictions in ``cfg.predictions`` (every cap, per image),
    scored by the same :class:`~depth_lightning.evaluation.evaluator.Evaluator` as the suite's model."""
    folder = Path(cfg.predictions)
    if not folder.is_dir():
        raise FileNotFoundError(f"predictions={str(folder)!r}: no such folder")
    datamodule = build(cfg.data, "data")
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    evaluator = Evaluator(datamodule.protocol, split="test", dataset=datamodule.name, predictions=[PREDICTIONS])
    missing = score_frames(evaluator, dataset, folder, float(cfg.scale))
    if missing and not cfg.allow_missing:
        raise DataError(
            f"predictions={folder}: no prediction for {len(missing)} of {len(dataset)} test frames, e.g. "
            f"{', '.join(str(folder / m) + '.png|.npy' for m in missing[:3])}; allow_missing=true scores the others"
        )
    result = evaluator.evaluate(dataset)
    result.card["prediction"] = {
        "resolution": "as saved",
        "to_ground_truth": "resized to each frame bilinearly in log depth (depth_lightning.score), clipped to "
        "[min_depth, cap]; ground truth valid where min_depth < g < cap, finite, inside the region",
    }
    result.card["frames_evaluated"], result.card["frames_left_out"] = len(dataset) - len(missing), len(missing)
    return {"result": result, "missing": missing, "predictions": str(folder), "data": datamodule.name}


def score_frames(evaluator: Evaluator, dataset: Any, folder: Path, scale: float) -> list[str]:
    """Hand every test frame that has a prediction to ``evaluator``; the names of those without one."""
    missing: list[str] = []
    resized = 0
    for index in range(len(dataset)):
        name = dataset.frame_name(index)
        pred = read_prediction(folder, name, scale)
        if pred is None:
            missing.append(name)
            continue
        _, depth = dataset.load(index)
        original = depth.shape[:2]
        resized += pred.shape != original
        pred = to_size(pred, original)
        box = dataset.crop_box(original)
        if box is not None:  # the part of the frame the dataset keeps, as for the suite's own model
            t, b, left, r = box
            pred, depth = pred[t:b, left:r], depth[t:b, left:r]
        mask = torch.from_numpy(np.array(evaluator.protocol.mask(original, box)))[None]
        batch = {"depth": torch.from_numpy(depth)[None], "eval_mask": mask, "index": torch.tensor([index])}
        evaluator.process(batch, {PREDICTIONS: torch.from_numpy(pred)[None]})
    if resized:
        log.warning("%d prediction(s) were not at their frame's size: resized to it (bilinear in log depth)", resized)
    return missing


def score_and_record(cfg: DictConfig) -> dict[str, Any]:
    """:func:`score`, then the test's files, the table with its intervals and the metrics JSON
    (``output``, or ``score_metrics.json`` in the run folder): what the command does. Returns the JSON."""
    scored = score(cfg)
    result = scored.pop("result")
    title = f"Test split of data={scored['data']}, {scored['predictions']}"
    out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "score_metrics.json"
    found = record_test(result, Path(cfg.paths.output_dir), cfg.get("intervals"), title)
    # the scored method's numbers as the table names them: abs_rel, cap50/abs_rel, ...
    test = {k.replace(f"{PREDICTIONS}/", ""): v for k, v in found.pop("test_values").items()}
    test["images"] = result.images
    summary = {**scored, **found, "test": test}
    write_json(out, summary)
    print(f"written: {out}")
    return summary


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="score")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> None:
    score_and_record(cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
