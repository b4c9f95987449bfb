"""Using a trained model: :class:`DepthEstimator` (the Python API), checkpoints, point clouds, ONNX."""

from depth_lightning.inference.estimator import DepthEstimator

__all__ = ["DepthEstimator"]
