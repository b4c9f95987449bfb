"""Hierarchical fusion head (Sec. 3.1, Fig. 2): concatenated 1/8 maps -> K-bin logits at 1/2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depth_lightning.models.packed_dropout import PackedUniformDropout

UPSAMPLE_MODES = ("learned", "bilinear")
UP_KERNEL, UP_STRIDE = 8, 4
# Where the deconvolution's output grid meets the 1/2-resolution pixel grid: with an 1/8 feature
# centred at 8i + 3.5 input pixels and a k=8, s=4 deconvolution, output pixel m of the 1/2 map
# sits at deconvolution index m + 2 (FCN's crop-layer offset).
UP_OFFSET = 2


def bilinear_kernel(size: int) -> Tensor:
    """The 2-D bilinear interpolation kernel of FCN's upsampling layers."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - centre).abs() / factor
    return (filt[:, None] * filt[None, :]).float()


class Upsample4x(nn.Module):
    """The 8x8, stride-4 transposed convolution, initialised as per-channel bilinear upsampling.

    ``learned`` is the paper's full K x K deconvolution (trainable, K*K*64 weights); ``bilinear``
    keeps the per-channel kernel fixed and applies it grouped (no parameters: cheap at K = 1000).
    """

    def __init__(self, channels: int, mode: str = "learned") -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"model.net.upsample={mode!r} is unknown; allowed: {', '.join(UPSAMPLE_MODES)}")
        self.mode, self.channels = mode, channels
        kernel = bilinear_kernel(UP_KERNEL)
        if mode == "learned":
            weight = torch.zeros(channels, channels, UP_KERNEL, UP_KERNEL)
            weight[torch.arange(channels), torch.arange(channels)] = kernel
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", kernel.expand(channels, 1, UP_KERNEL, UP_KERNEL).clone())

    def forward(self, x: Tensor, out_size: tuple[int, int]) -> Tensor:
        groups = 1 if self.mode == "learned" else self.channels
        y = F.conv_transpose2d(x, self.weight.to(x.dtype), stride=UP_STRIDE, groups=groups)
        h, w = out_size
        return y[:, :, UP_OFFSET : UP_OFFSET + h, UP_OFFSET : UP_OFFSET + w]


class FusionHead(nn.Module):
    """Concatenate the tapped maps, dropout, 3x3 conv to K channels + BN, 4x deconvolution.

    Args:
        in_channels: channels of each tapped map (all at 1/8 of the input).
        num_bins: K.
        fusion: concatenate every tap (the paper); ``False`` is Table 3's "no concat layer"
            ablation: only the last map is used.
        dropout: dropout probability before the classifier (0.5 in the paper).
        upsample: ``learned`` or ``bilinear`` (see :class:`Upsample4x`).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_bins: int,
        fusion: bool = True,
        dropout: float = 0.5,
        upsample: str = "learned",
    ) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("model.net.taps must name at least one feature map")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"model.net.dropout must be in [0, 1), got {dropout!r}")
        self.fusion = fusion
        width = sum(in_channels) if fusion else in_channels[-1]
        self.dropout = PackedUniformDropout(dropout)
        # Fig. 2 caption: BatchNorm follows every convolution but the last (the deconvolution).
        # No ReLU here: these are logits.
        self.classifier = nn.Sequential(nn.Conv2d(width, num_bins, 3, padding=1, bias=False), nn.BatchNorm2d(num_bins))
        self.upsample = Upsample4x(num_bins, upsample)

    def forward(self, features: Sequence[Tensor], out_size: tuple[int, int]) -> Tensor:
        maps = list(features) if self.fusion else [features[-1]]
        x = torch.cat(maps, dim=1) if len(maps) > 1 else maps[0]
        return self.upsample(self.classifier(self.dropout(x)), out_size)
