"""Datasets (synthetic scenes, NYU Depth v2, KITTI), the shared frame pipeline and the DataModule."""

from depth_lightning.data.datamodule import DepthDataModule
from depth_lightning.data.frames import FrameDataset
from depth_lightning.data.synthetic import SyntheticScenes

__all__ = ["DepthDataModule", "FrameDataset", "SyntheticScenes"]
