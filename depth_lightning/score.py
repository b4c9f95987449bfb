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

from depth_lightning import bootstrap
from depth_lightning.config import CONF_DIR, build
from depth_lightning.data.io import DataError, read_depth_png
from depth_lightning.errors import one_line_errors
from depth_lightning.files import write_json
from depth_lightning.metrics import METRIC_NAMES, DepthMetrics
from depth_lightning.per_image import TestRecord, write_per_image
from depth_lightning.tables import format_table

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
    """The test split's metrics of the predictions in ``cfg.predictions`` (every cap, per image)."""
    folder = Path(cfg.predictions)
    if not folder.is_dir():
        raise FileNotFoundError(f"predictions={str(folder)!r}: no such folder")
    datamodule = build(cfg.data, "data")
    datamodule.setup("test")
    dataset, protocol = datamodule.datasets["test"], datamodule.protocol
    metrics = [DepthMetrics(protocol.min_depth, cap, mode=protocol.aggregation) for cap in protocol.caps]
    missing: list[str] = []
    resized = 0
    for index in range(len(dataset)):
        name = dataset.frame_name(index)
        pred = read_prediction(folder, name, float(cfg.scale))
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
        mask = torch.from_numpy(np.array(protocol.mask(original, box)))[None]
        for metric in metrics:
            metric.update(torch.from_numpy(pred)[None], torch.from_numpy(depth)[None], mask, ids=torch.tensor([index]))
    if missing and not cfg.allow_missing:
        raise DataError(
            f"predictions={folder}: no prediction for {len(missing)} of {len(dataset)} test frames, e.g. "
            f"{', '.join(str(folder / m) + '.png|.npy' for m in missing[:3])}; allow_missing=true scores the others"
        )
    if resized:
        log.warning("%d prediction(s) were not at their frame's size: resized to it (bilinear in log depth)", resized)
    results: dict[str, Any] = {}
    record = TestRecord(protocol.aggregation)
    for i, metric in enumerate(metrics):
        values = metric.compute()
        results.update({f"{protocol.prefix(i)}{k}": float(v) for k, v in values.items()})
        record.sums[f"{protocol.prefix(i)}{PREDICTIONS}"] = (metric.last_ids, metric.last_rows)
    results["images"] = len(dataset) - len(missing)
    for i in record.image_ids():
        record.frames[i], record.lines[i] = dataset.frame_name(i), dataset.list_line(i)
    card = datamodule.protocol_card("test", None)
    card["prediction"] = {
        "resolution": "as saved",
        "to_ground_truth": "resized to each frame bilinearly in log depth (depth_lightning.score), clipped to "
        "[min_depth, cap]; ground truth valid where min_depth < g < cap, finite, inside the region",
    }
    card["frames_evaluated"], card["frames_left_out"] = results["images"], len(missing)
    method = bootstrap.settings(cfg.get("intervals"))
    return {
        "test": results,
        "test_intervals": record.intervals(method["resamples"], method["seed"], method["level"]),
        "intervals": method,
        "protocol": card,
        "record": record,
        "missing": missing,
        "predictions": str(folder),
        "data": datamodule.name,
    }


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="score")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> None:
    scored = score(cfg)
    record = scored.pop("record")
    rows = {k: {PREDICTIONS: scored["test"][k]} for k in METRIC_NAMES}
    bounds = {k: {PREDICTIONS: scored["test_intervals"].get(f"{PREDICTIONS}/{k}")} for k in METRIC_NAMES}
    print(f"\nTest split of data={scored['data']} ({scored['test']['images']} images), {scored['predictions']}:")
    print(format_table(rows, [PREDICTIONS], first="metric", intervals=bounds))
    out = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "score_metrics.json"
    scored["per_image"] = str(write_per_image(Path(cfg.paths.output_dir), record, scored["protocol"]))
    write_json(out, scored)
    print(f"written: {out} (per image: {scored['per_image']})")


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
