"""The paper's network: dilated ResNet trunk + hierarchical fusion head + log-depth bins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from depth_lightning.models.backbone import ResNetBackbone
from depth_lightning.models.bins import LogDepthBins
from depth_lightning.models.head import FusionHead


class DepthNet(nn.Module):
    """RGB ``(B,3,H,W)`` -> logits over K log-depth bins ``(B,K,floor(H/2),floor(W/2))``.

    ``predict`` decodes the logits into depth (soft-weighted-sum and hard-max) and uncertainty.
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
    ) -> None:
        super().__init__()
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

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        return self.head(self.backbone(image), self.output_size(h, w))

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
    )


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
