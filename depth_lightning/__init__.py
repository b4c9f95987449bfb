"""depth_lightning: monocular depth as classification over log-depth bins (Li, Dai, He)."""

__version__ = "0.1.0"
