"""The report's figures from a run's files: Fig. 6, Fig. 7 and the sparsification curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from depth_lightning.evaluation.figures import confusion_figure, distribution_figure, sparsification_figure
from experiments.report.runs import Run


def figure6(run: Run, out: Path) -> Path | None:
    """Fig. 6 from a run's ``bin_distributions.npz``."""
    path = run.path / "bin_distributions.npz"
    if not path.is_file():
        return None
    data = np.load(path)
    title = f"Fig. 6, {run.path.name}"
    fig = distribution_figure(data["steps"], data["probs"], data["labels"], data["log_centres"], title)
    Image.fromarray(fig).save(out)
    return out


def figure7(run: Run, out: Path) -> Path | None:
    """Fig. 7 from a run's ``confusion_val.npy``."""
    path = run.path / "confusion_val.npy"
    if not path.is_file():
        return None
    Image.fromarray(confusion_figure(np.load(path), f"Fig. 7, {run.path.name}", run.bins)).save(out)
    return out


def figure_sparsification(run: Run, out: Path) -> Path | None:
    """The uncertainty's sparsification curves from a run's ``sparsification.json``."""
    path = run.path / "sparsification.json"
    if not path.is_file():
        return None
    Image.fromarray(sparsification_figure(json.loads(path.read_text()), run.path.name)).save(out)
    return out
