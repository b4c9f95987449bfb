"""The paper's network: dilated ResNet trunk + hierarchical fusion head + log-depth bins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from depth_lightning.models.backbone import ResNetBackbone
from depth_lightning.models.bins import LogDepthBins
from depth_lightning.models.head import FusionHead

# torchvision's ImageNet classification weights expect RGB in [0, 1] normalised by these
# (weights.transforms().mean / .std).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("imagenet", "none")


def input_normalization(normalize: str, pretrained: str) -> str:
    """``auto``: ImageNet statistics when the backbone starts from pretrained weights, else none."""
    if normalize == "auto":
        return "none" if pretrained in (None, "none") else "imagenet"
    return normalize


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, part of the network so that training, evaluation, predict
    and the ONNX graph all feed the weights what they were trained on."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class DepthNet(nn.Module):
    """RGB ``(B,3,H,W)`` -> logits over K log-depth bins ``(B,K,floor(H/2),floor(W/2))``.

    ``predict`` decodes the logits into depth (soft-weighted-sum and hard-max) and uncertainty.
    ``normalize``: ``imagenet`` standardises the RGB input as the ImageNet weights expect.
    ``freeze_bn``: the backbone's BatchNorm layers stay in eval mode (running statistics frozen)
    while training, as Caffe ResNets were fine-tuned (and mmseg's ``norm_eval``).
    """

    def __init__(
        self,
        backbone: str = "resnet152",
        num_bins: int = 200,
        d_min: float = 0.5,
        d_max: float = 10.0,
        dilated: bool = True,
        fusion: bool = True,
        taps: Sequence[str] = ("layer2", "layer3.mid", "layer3", "layer4"),
        reduce_channels: int | None = None,
        dropout: float = 0.5,
        upsample: str = "learned",
        pretrained: str = "none",
        valid_min: float | None = None,
        valid_max: float | None = None,
        normalize: str = "none",
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        normalize = input_normalization(normalize, pretrained)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"model.normalize={normalize!r} is unknown; allowed: auto, {', '.join(NORMALIZATIONS)}")
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD) if normalize == "imagenet" else nn.Identity()
        self.freeze_bn = freeze_bn
        self.bins = LogDepthBins(d_min, d_max, num_bins, valid_min=valid_min, valid_max=valid_max)
        self.backbone = ResNetBackbone(backbone, dilated=dilated, taps=taps, pretrained=pretrained)
        self.head = FusionHead(
            self.backbone.out_channels,
            num_bins,
            fusion=fusion,
            reduce_channels=reduce_channels,
            dropout=dropout,
            upsample=upsample,
        )

    @staticmethod
    def output_size(height: int, width: int) -> tuple[int, int]:
        return height // 2, width // 2

    def train(self, mode: bool = True) -> DepthNet:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        return self.head(self.backbone(self.normalize(image)), self.output_size(h, w))

    def predict(self, image: Tensor) -> dict[str, Tensor]:
        """Logits plus ``soft``/``hard`` depth (metres) and ``uncertainty`` (std of log depth)."""
        logits = self(image)
        return {"logits": logits, **self.bins.decode(logits)}


def build_network(cfg: Any) -> DepthNet:
    """Build from a ``model`` config node (see ``depth_lightning.config.ModelConfig``)."""
    return DepthNet(
        backbone=cfg.backbone,
        num_bins=cfg.num_bins,
        d_min=cfg.d_min,
        d_max=cfg.d_max,
        dilated=cfg.dilated,
        fusion=cfg.fusion,
        taps=list(cfg.taps),
        reduce_channels=cfg.reduce_channels,
        dropout=cfg.dropout,
        upsample=cfg.upsample,
        pretrained=cfg.pretrained,
        valid_min=cfg.get("valid_min"),
        valid_max=cfg.get("valid_max"),
        normalize=cfg.get("normalize", "auto"),
        freeze_bn=cfg.get("freeze_bn", False),
    )


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
