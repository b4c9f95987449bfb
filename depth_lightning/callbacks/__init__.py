"""Training callbacks: depth panels and the paper's Figs. 6 and 7 (``figures``), the training-health
check (``health``). Fault handling and the time budget are in :mod:`depth_lightning.run`."""

from depth_lightning.callbacks.figures import BinDiagnostics, DepthPanels
from depth_lightning.callbacks.health import TrainingHealth

__all__ = ["BinDiagnostics", "DepthPanels", "TrainingHealth"]
