"""depth_lightning: monocular depth as classification over log-depth bins (Li, Dai, He).

``from depth_lightning import DepthEstimator``: the inference API, imported when first asked for (the
package's other modules do not pay for it).
"""

from typing import Any

from depth_lightning.core import __version__

__all__ = ["DepthEstimator", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "DepthEstimator":
        from depth_lightning.inference.estimator import DepthEstimator

        return DepthEstimator
    raise AttributeError(f"module 'depth_lightning' has no attribute {name!r}")
