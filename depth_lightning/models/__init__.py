"""The network (Sec. 3.1), the depth discretisation (Sec. 3.2) and the loss (Eq. 4)."""

from depth_lightning.models.backbone import BACKBONES, ResNetBackbone
from depth_lightning.models.bins import DECODERS, IGNORE_INDEX, LogDepthBins
from depth_lightning.models.head import FusionHead, Upsample4x
from depth_lightning.models.loss import bin_cross_entropy
from depth_lightning.models.network import DepthNet, count_parameters

__all__ = [
    "DECODERS",
    "BACKBONES",
    "IGNORE_INDEX",
    "DepthNet",
    "FusionHead",
    "LogDepthBins",
    "ResNetBackbone",
    "Upsample4x",
    "bin_cross_entropy",
    "count_parameters",
]
