"""``python -m depth_lightning.score predictions=<folder> data=<dataset> [data.dataset.root=...]``.

Scores any method's saved depth maps on a dataset's test list under exactly the suite's protocol
(the region on the original frame, depth range, caps, per-image aggregation), so that other methods
are compared on the same footing; where the files are and how they are read:
:mod:`depth_lightning.evaluation.saved` (``scale``: 1000 for millimetres, 256 for KITTI's convention).

Predictions are checked where they enter, each problem named by file: non-finite or non-positive
pixels (refused; ``invalid_predictions=clip`` scores them clipped to the range, recorded on the card),
another aspect ratio than the frame's (refused), units far from the ground truth's (refused, naming
``scale``; ``check_units=false`` scores them anyway).

Relative predictions (``alignment=scale_shift`` and the others of
:mod:`~depth_lightning.evaluation.alignment`) are fitted to each frame's ground truth before they are
scored; they may then hold values of any sign (affine modes), are resized linearly, and are not
checked for units.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from depth_lightning.core.config import build
from depth_lightning.core.files import check_writable, write_json
from depth_lightning.evaluation.results import record_test
from depth_lightning.evaluation.saved import PREDICTIONS, score_predictions, score_settings
from depth_lightning.run.command import command

log = logging.getLogger(__name__)


def score(cfg: DictConfig) -> dict[str, Any]:
    """The test split's metrics of the predictions in ``cfg.predictions`` (every cap, per image),
    scored by the same :class:`~depth_lightning.evaluation.evaluator.Evaluator` as the suite's model."""
    folder = Path(cfg.predictions)
    if not folder.is_dir():
        raise FileNotFoundError(f"predictions={str(folder)!r}: no such folder")
    settings = score_settings(cfg)
    datamodule = build(cfg.data, "data")
    result, missing = score_predictions(datamodule, folder, settings)
    return {"result": result, "missing": missing, "predictions": str(folder), "data": datamodule.name}


def score_and_record(cfg: DictConfig) -> dict[str, Any]:
    """:func:`score`, then the test's files, the table with its intervals and the metrics JSON
    (``output``, or ``score_metrics.json`` in the run folder): what the command does. Returns the JSON."""
    out = check_writable(cfg.output or Path(cfg.paths.output_dir) / "score_metrics.json", "output")
    scored = score(cfg)
    result = scored.pop("result")
    title = f"Test split of data={scored['data']}, {scored['predictions']}"
    found = record_test(result, Path(cfg.paths.output_dir), cfg.get("intervals"), title)
    # the scored method's numbers as the table names them: abs_rel, cap50/abs_rel, ...
    test = {k.replace(f"{PREDICTIONS}/", ""): v for k, v in found.pop("test_values").items()}
    test["images"] = result.images
    summary = {**scored, **found, "test": test}
    write_json(out, summary)
    print(f"written: {out}")
    return summary


main = command("score", score_and_record)

if __name__ == "__main__":
    main()
