"""The files a prediction is written as, by ``predict`` and by the demo page alike (so their files are the
same, byte for byte): ``<name>_depth.png`` (16-bit, millimetres), ``_depth_color.png``, ``_uncertainty.png``
(colourised) and ``_uncertainty.npy`` (std of log depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from depth_lightning.core.files import save_atomic
from depth_lightning.data.io import write_depth_png
from depth_lightning.evaluation.figures import colorize


def write_prediction(out_dir: Path, name: str, pred: dict[str, np.ndarray], d_min: float, d_max: float) -> None:
    """``pred`` (``depth`` metres, ``uncertainty``) of the image ``name`` as its files in ``out_dir``."""
    write_depth_png(out_dir / f"{name}_depth.png", pred["depth"], scale=1000.0)  # 16-bit millimetres
    color = colorize(pred["depth"], d_min, d_max)
    save_atomic(out_dir / f"{name}_depth_color.png", lambda p: Image.fromarray(color).save(p, format="PNG"))
    unc = pred["uncertainty"]
    ucol = colorize(unc, 0.0, max(float(unc.max()), 1e-6), cmap="viridis", log=False)
    save_atomic(out_dir / f"{name}_uncertainty.png", lambda p: Image.fromarray(ucol).save(p, format="PNG"))
    save_atomic(out_dir / f"{name}_uncertainty.npy", lambda p: np.save(p, unc.astype(np.float32)))
