"""Datasets (embedded synthetic scenes) and the DataModule."""

from depth_lightning.data.datamodule import DepthDataModule, build_dataset
from depth_lightning.data.synthetic import SyntheticScenes

__all__ = ["DepthDataModule", "SyntheticScenes", "build_dataset"]
